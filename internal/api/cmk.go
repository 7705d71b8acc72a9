package api

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

var jobProgress = map[string]int{"": 0, "copied": 40, "verified": 70, "switched": 100}

func (h *Handler) cmkJSON(st cmk.Status) client.CMKStatus {
	r := st.Record
	out := client.CMKStatus{Org: r.OrgID, Cloud: st.Cloud, Fields: st.Fields, State: string(r.State), TenantID: r.TenantID, ConsentedAt: optTime(r.ConsentedAt),
		ConsentedBy: r.ConsentedBy, VaultURI: r.VaultURI, KeyName: r.KeyName, KeyVersion: r.KeyVersion, CurrentVersion: r.ActiveVersion,
		ReasonCode: r.ReasonCode, Reason: h.redact(r.Reason), RecoverableUntil: optTime(r.RecoverableUntil), LastProbeAt: optTime(r.LastProbeAt), Degraded: r.Degraded,
		Warning: r.Warning, DataLostAt: optTime(r.DataLostAt)}
	if k := st.Key; k != nil {
		// The key in use, never an unverified newly configured one.
		out.VaultURI, out.KeyName, out.KeyVersion = k.VaultURI, k.KeyName, k.KeyVersion
	}
	if p := st.Pending; p != nil {
		out.Pending = &client.CMKKeyConfig{VaultURI: p.VaultURI, KeyName: p.KeyName, KeyVersion: p.KeyVersion}
	}
	if r.ActiveKeyURI != "" {
		scheme, _, _ := strings.Cut(r.ActiveKeyURI, ":")
		out.Provider, out.MasterKey = scheme, r.ActiveKeyURI
	} else {
		out.MasterKey = "platform"
		out.Provider = h.keys.PlatformKey().Provider
	}
	if !r.LastProbeAt.IsZero() {
		out.LastProbeResult = "ok"
		if r.LastProbeError != "" {
			out.LastProbeResult = h.redact(r.LastProbeError)
		}
	}
	if rv := st.Revocation; rv != nil {
		out.Revocation = &client.CMKRevocation{Generation: rv.Generation, Reason: rv.Reason, ChangedAt: rv.ChangedAt, Honoured: rv.Honoured,
			Nodes: rv.Live, LatestReceipt: optTime(rv.LatestReceipt), Pending: rv.Pending}
	}
	if b := st.VaultBudget; b != nil {
		vb := vaultBudgetJSON(*b)
		vb.Calls = nil // other orgs' calls too: the operator's route has them
		out.VaultBudget = &vb
	}
	out.Staged = h.stagedJSON(st.Staged, nil, h.cmk.Clock())
	if j := st.Job; j != nil {
		out.Job = &client.CMKJob{ID: j.ID, Kind: string(j.Kind), State: string(j.State), Step: j.Step, Progress: jobProgress[j.Step],
			Attempts: j.Attempts, Error: h.redact(j.Error), UpdatedAt: j.UpdatedAt}
		if j.State == cmk.JobDone {
			out.Job.Progress = 100
		}
	}
	return out
}

func (h *Handler) cmkStatus(c *call) error {
	st, err := h.cmk.Status(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	out, err := h.statusWithStaged(c, st)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) cmkAuthorize(c *call) error {
	var req client.CMKAuthorizeRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	cl := h.cmk.Cloud(req.Cloud)
	if cl == nil && req.Cloud != "" {
		return &fault.Error{Kind: fault.Invalid, Field: "cloud", Reason: fmt.Sprintf("cloud %q is not offered by this orgkms (offered: %s)", req.Cloud, strings.Join(cloudNames(h.cmk.Clouds()), ", "))}
	}
	if cl != nil && cl.Authorization(c.org).Method == cmk.AuthGrant {
		// No consent round trip: the answer is what to grant, in the
		// customer's console; configuring the key records it.
		if _, err := h.cmk.Status(c.r.Context(), c.org); err != nil {
			return err // the org must exist
		}
		a := cloudAuthorization(cl, c.org)
		return c.reply(http.StatusOK, client.CMKAuthorizeResponse{Cloud: cl.Name(), Method: string(cmk.AuthGrant), Authorization: &a})
	}
	u, err := h.cmk.Authorize(c.r.Context(), c.actor(), c.org, req.TenantID)
	if err != nil {
		return err
	}
	name := ""
	if cl != nil {
		name = cl.Name()
	}
	return c.reply(http.StatusOK, client.CMKAuthorizeResponse{Cloud: name, Method: string(cmk.AuthConsent), ConsentURL: u, ExpiresAt: time.Now().Add(cmk.ConsentTTL).UTC()})
}

// cloudNames are the names of clouds.
func cloudNames(clouds []cmk.Cloud) []string {
	out := make([]string, len(clouds))
	for i, c := range clouds {
		out[i] = c.Name()
	}
	return out
}

// cloudAuthorization is how a customer authorizes orgkms for org in cl.
func cloudAuthorization(cl cmk.Cloud, org string) client.CMKAuthorization {
	a := cl.Authorization(org)
	v := cmk.Vars{"org": org}
	out := client.CMKAuthorization{Method: string(a.Method), Service: a.Service, TenantLabel: a.TenantLabel, TenantHelp: v.Expand(a.TenantHelp),
		Instructions: v.Expand(a.Instructions), Access: v.Expand(a.Access)}
	for _, val := range a.Values {
		out.Values = append(out.Values, client.CMKValue{Name: val.Name, Label: val.Label, Value: val.Value})
	}
	return out
}

func (h *Handler) cmkConfigure(c *call) error {
	var req client.CMKConfigureRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	ctx := c.r.Context()
	legacy := req.VaultURI != "" || req.KeyName != "" || req.KeyVersion != ""
	var err error
	switch {
	case len(req.Fields) > 0 && legacy:
		return &fault.Error{Kind: fault.Invalid, Field: "fields", Reason: "name the key either by fields or by vault_uri, key_name and key_version, not both"}
	case len(req.Fields) > 0:
		_, err = h.cmk.ConfigureKey(ctx, c.actor(), c.org, req.Cloud, req.Fields)
	case req.Cloud != "" && req.Cloud != h.cmk.CloudName():
		// Another cloud's key is named by its fields only: the cloud says
		// which are missing (or that it is not offered).
		_, err = h.cmk.ConfigureKey(ctx, c.actor(), c.org, req.Cloud, nil)
	default:
		_, err = h.cmk.Configure(ctx, c.actor(), c.org, req.VaultURI, req.KeyName, req.KeyVersion)
	}
	if err != nil {
		return err
	}
	return h.cmkStatus(c)
}

// cmkClouds lists the offered clouds, their fields and how to authorize.
func (h *Handler) cmkClouds(c *call) error {
	if _, err := h.cmk.Status(c.r.Context(), c.org); err != nil {
		return err // the org must exist
	}
	out := client.CMKClouds{Clouds: []client.CMKCloud{}}
	for i, cl := range h.cmk.Clouds() {
		org := cmk.Vars{"org": c.org}
		cc := client.CMKCloud{Name: cl.Name(), DisplayName: cl.DisplayName(), Default: i == 0, Authorization: cloudAuthorization(cl, c.org)}
		for _, f := range cl.Fields() {
			cc.Fields = append(cc.Fields, client.CMKField{Name: f.Name, Label: f.Label, Help: org.Expand(f.Help), Example: f.Example, Required: f.Required, Version: f.Version})
		}
		for _, ch := range cl.Wording().Checks {
			cc.Checks = append(cc.Checks, client.CMKCheckSpec{ID: ch.ID, Name: ch.Name, Verifies: ch.Verifies})
		}
		out.Clouds = append(out.Clouds, cc)
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) cmkTest(c *call) error {
	rep := h.cmk.Test(c.r.Context(), c.org)
	out := client.CMKTestReport{OK: rep.OK, Key: rep.Key, Version: rep.Version}
	for _, ch := range rep.Checks {
		out.Checks = append(out.Checks, client.CMKCheck{ID: ch.ID, Name: ch.Name, Status: string(ch.Status), Detail: h.redact(ch.Detail), Remedy: h.redact(ch.Remedy)})
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) cmkEnable(c *call) error {
	st, err := h.cmk.Enable(c.r.Context(), c.actor(), c.org)
	if err != nil {
		return err
	}
	return c.reply(http.StatusAccepted, h.cmkJSON(st))
}

func (h *Handler) cmkDisable(c *call) error {
	st, err := h.cmk.Disable(c.r.Context(), c.actor(), c.org)
	if err != nil {
		return err
	}
	return c.reply(http.StatusAccepted, h.cmkJSON(st))
}

func (h *Handler) cmkFallback(c *call) error {
	var req client.CMKFallbackRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if !req.ConfirmDataLoss {
		return &fault.Error{Kind: fault.Invalid, Field: "confirm_data_loss", Reason: "must be true: data encrypted before the fallback is lost for good"}
	}
	st, err := h.cmk.FallBack(c.r.Context(), c.actor(), c.org)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, h.cmkJSON(st))
}

var callbackPage = template.Must(template.New("cb").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>orgkms: {{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1b1f24;line-height:1.5}
.ok{color:#116329}.fail{color:#a40e26}code{background:#f3f4f6;padding:.1rem .3rem}
#continue{display:inline-block;margin-top:1rem;padding:.7rem 1.3rem;background:#1f4e8c;color:#fff;border-radius:6px;font-weight:600;font-size:1.1rem;text-decoration:none}
#continue:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}</style></head>
<body><h1 class="{{.Class}}">{{.Title}}</h1><p>{{.Message}}</p>{{if .Next}}<p>Next: {{.Next}}</p>{{end}}
{{if .Continue}}<p><a id="continue" href="{{.Continue}}" autofocus>Continue to Settings → Security</a></p>{{end}}</body></html>`))

// consoleSecurityPath is the console's Security page of org, with the
// consent outcome for its message.
func consoleSecurityPath(org string, ok bool) string {
	outcome := "failed"
	if ok {
		outcome = "ok"
	}
	return "/console/orgs/" + url.PathEscape(org) + "/security?consent=" + outcome
}

// cmkCallback is where the consent page sends the administrator back. It
// is public: the single-use, expiring state binds it to the org and user
// that started the round trip.
//
// When a console user started the round trip, the page links back to the
// console. The console's session cookie is SameSite=Strict, so the browser
// does not send it on this page, reached by a cross-site redirect; it does
// on the same-site navigation that the link starts.
func (h *Handler) cmkCallback(c *call) error {
	q := c.r.URL.Query()
	req, err := h.cmk.Callback(c.r.Context(), cmk.ConsentResult{State: q.Get("state"), AdminConsent: q.Get("admin_consent"),
		Tenant: q.Get("tenant"), Error: q.Get("error"), ErrorDescription: q.Get("error_description")})
	data := struct{ Title, Class, Message, Next, Continue string }{"orgkms is authorized", "ok", "", "", ""}
	status := http.StatusOK
	console := strings.HasPrefix(req.Actor, "user:") && req.OrgID != ""
	if err != nil {
		status = Status(fault.KindOf(err))
		data.Title, data.Class, data.Message = "Authorization failed", "fail", h.redact(fault.Message(err))
		data.Next = "start again from Step 1 (Authorize)."
	} else {
		data.Message = "Consent for tenant " + req.TenantID + " was recorded for org " + req.OrgID + "."
		data.Next = "Step 2: configure the Key Vault URI, key name and version, then Test Managed Key."
	}
	if console {
		data.Next = ""
		data.Continue = consoleSecurityPath(req.OrgID, err == nil)
	}
	c.status = status
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(status)
	return callbackPage.Execute(c.w, data)
}
