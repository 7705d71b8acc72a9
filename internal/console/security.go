package console

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// securityData is the Security page's own data.
type securityData struct {
	CMK          cmkView
	Available    bool   // customer managed keys are configured on this orgkms
	Unavailable  string // why not
	Cloud        string
	Enabled      bool // the Enable Customer Managed Keys switch is on
	ShowSteps    bool
	CanAuthorize bool
	CanConfigure bool
	CanDisable   bool
	CanTest      bool   // Test Managed Key of the configured key alone (the key cannot be changed now)
	Replacing    bool   // Step 2 stages a replacement of the active key
	Consent      string // "Authorized for tenant ... on ... by ..."
	LastFailure  string // a failed job's reason, after roll-back
	Report       *cmk.Report
	States       []stateInfo
	Demo         *Demo // the emulator's demo values, in development
	// Auth and Fields are the org's cloud's authorization and the fields
	// of its key (cmk.Cloud), rendered as the Steps.
	Auth       authView
	Fields     []fieldView
	Configured []configuredField // the key as configured, for Test Managed Key alone
	Staged     *stagedView       // the staged revocation summary (staged.go); nil without CMK service
	// Impact is the preview of disabling (or, for a lost org, falling
	// back), shown beside the link to its confirmation (impact.go).
	Impact *impactView
	// ReplaceImpact is the preview of replacing the key in use, shown
	// with Step 2 while the org is active.
	ReplaceImpact *impactView
	// Choices are the clouds offered, when there are several and the org
	// may still choose (no key in use): the page lets the admin pick one.
	Choices []cloudChoice
}

// cloudChoice is one cloud the admin may choose.
type cloudChoice struct {
	Name, DisplayName string
	Current           bool
}

// authView is a cloud's authorization, its help texts rendered.
type authView struct {
	Consent      bool // an admin-consent round trip (Step 1 form)
	Service      string
	TenantLabel  string
	TenantHelp   template.HTML
	Instructions template.HTML
	Access       template.HTML
	Values       []cmk.Value
}

// fieldView is one input of Step 2.
type fieldView struct {
	Name, ID, Label string
	Optional        bool
	URL             bool
	Size            int
	Help            template.HTML
}

// configuredField is one field of the configured key.
type configuredField struct{ Label, Value string }

// richText renders a cloud's text: HTML-escaped, {org} replaced, `code`
// spans as <code>.
func richText(s, org string) template.HTML {
	s = template.HTMLEscapeString(cmk.Vars{"org": org}.Expand(s))
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			b.WriteString("<code>" + part + "</code>")
		} else {
			b.WriteString(part)
		}
	}
	return template.HTML(b.String())
}

// cloud returns the cloud the Security page works with: the one the admin
// chose (the request's cloud, from the page's cloud choice or its forms)
// while the org may choose, else the org's (of its key, else the
// default); nil when customer managed keys are off.
func (h *handler) cloud(rq *request) cmk.Cloud {
	if h.cfg.CMK == nil {
		return nil
	}
	if name := rq.r.FormValue("cloud"); name != "" && mayChoose(rq.status) {
		if c := h.cfg.CMK.Cloud(name); c != nil {
			return c
		}
	}
	return h.cfg.CMK.Cloud(rq.status.Cloud)
}

// mayChoose reports whether the org may still choose its cloud: no key of
// its own is in use, and none is being moved to.
func mayChoose(st cmk.Status) bool {
	r := st.Record
	return r.ActiveKeyURI == "" && (r.State == cmk.StatePlatform || r.State == cmk.StateAuthorized)
}

// keyFields maps fault fields to the Security forms' field names: the
// tenant and the cloud's fields by their own names, a key URI to the
// first field.
func keyFields(cloud cmk.Cloud) map[string]string {
	m := map[string]string{"tenant_id": "tenant_id"}
	if cloud != nil {
		for i, f := range cloud.Fields() {
			m[f.Name] = f.Name
			if i == 0 {
				m["key_uri"] = f.Name
			}
		}
	}
	return m
}

func (h *handler) security(rq *request) error {
	q := rq.r.URL.Query()
	rec := rq.status.Record
	if q.Get("switch") == "1" && q.Get("enable") == "" && rec.State != cmk.StatePlatform {
		// The switch was turned off: confirm what that does first.
		return rq.redirect(orgPath(rq.org, "security/disable"))
	}
	v := &view{Flash: flashes[q.Get("done")]}
	switch q.Get("consent") {
	case "ok":
		v.Flash = flashes["consent-ok"]
		if rec.ConsentedAt.IsZero() {
			v.Flash = flashes["consent-fail"]
		}
	case "failed":
		v.Flash = flashes["consent-fail"]
	}
	return h.renderSecurity(rq, http.StatusOK, v, q.Get("enable") == "on", nil)
}

// renderSecurity renders the Security page; v.Form, when nil, is filled
// from the org's configuration.
func (h *handler) renderSecurity(rq *request, status int, v *view, switchOn bool, rep *cmk.Report) error {
	st := rq.status
	rec := st.Record
	d := securityData{CMK: h.cmkView(st), Report: rep, States: stateInfos(rec.State), Demo: h.cfg.Demo}
	d.Available = h.cfg.CMK != nil && h.cfg.CMK.Enabled()
	if cloud := h.cloud(rq); d.Available && cloud != nil {
		d.Cloud = cloud.Name()
		if offered := h.cfg.CMK.Clouds(); len(offered) > 1 && mayChoose(st) {
			for _, c := range offered {
				d.Choices = append(d.Choices, cloudChoice{Name: c.Name(), DisplayName: c.DisplayName(), Current: c.Name() == d.Cloud})
			}
		}
		a := cloud.Authorization(rq.org)
		d.Auth = authView{Consent: a.Method == cmk.AuthConsent, Service: a.Service, TenantLabel: a.TenantLabel, TenantHelp: richText(a.TenantHelp, rq.org),
			Instructions: richText(a.Instructions, rq.org), Access: richText(a.Access, rq.org), Values: a.Values}
		for _, f := range cloud.Fields() {
			d.Fields = append(d.Fields, fieldView{Name: f.Name, ID: strings.ReplaceAll(f.Name, "_", "-"), Label: f.Label, Optional: !f.Required,
				URL: f.URL, Size: f.Size, Help: richText(f.Help, rq.org)})
			if v := configuredValue(rec, f, cloud); v != "" && !f.Version {
				d.Configured = append(d.Configured, configuredField{Label: f.Label, Value: v})
			}
		}
	} else {
		d.Unavailable = "Customer managed keys are not available on this orgkms: the platform operator must configure the cloud (cmk.cloud) and its application credentials."
	}
	d.Enabled = rec.State != cmk.StatePlatform || switchOn
	d.ShowSteps = d.Available && d.Enabled
	switch rec.State {
	case cmk.StatePlatform, cmk.StateAuthorized, cmk.StateActive, cmk.StateRevoked:
		d.CanAuthorize = true // again after a revoked consent, too
	}
	d.CanConfigure = rec.State == cmk.StateAuthorized || rec.State == cmk.StateActive ||
		rec.State == cmk.StatePlatform && d.Available && !d.Auth.Consent // a grant cloud: configuring authorizes
	d.CanTest = !d.CanConfigure && rec.KeyURI != "" && (rec.State == cmk.StateRevoked || rec.State == cmk.StateLost)
	d.Replacing = rec.State == cmk.StateActive
	if d.Replacing && d.CanConfigure {
		d.ReplaceImpact = h.impact(rq, cmk.ImpactReplace, "", "Replace")
	}
	d.CanDisable = rec.State == cmk.StateAuthorized || rec.State == cmk.StateActive || rec.State == cmk.StateLost
	switch {
	case rec.State == cmk.StateLost:
		d.Impact = h.impact(rq, cmk.ImpactFallback, "", "Fall back")
	case d.CanDisable:
		d.Impact = h.impact(rq, cmk.ImpactDisable, "", "Disable")
	}
	if !rec.ConsentedAt.IsZero() {
		by := " on " + fmtTime(rec.ConsentedAt) + " by " + strings.TrimPrefix(rec.ConsentedBy, "user:")
		if d.Auth.Consent || d.Auth.TenantLabel == "" {
			d.Consent = "Authorized for tenant " + rec.TenantID + by
		} else {
			// A grant: configuring the key recorded the account; Test
			// Managed Key proves what the customer granted.
			d.Consent = d.Auth.TenantLabel + " " + rec.TenantID + " recorded" + by + "; Test Managed Key proves the access you granted"
		}
	}
	if (rec.State == cmk.StateAuthorized || rec.State == cmk.StateActive) && rec.Reason != "" {
		d.LastFailure = rec.Reason
	}
	if v.Form == nil {
		v.Form = h.keyForm(rq, nil)
	}
	if h.cfg.CMK != nil {
		sv := h.stagedView(rq)
		d.Staged = &sv
	}
	v.Title, v.Active, v.Data = "Settings → Security", "security", d
	v.Refresh = busy(st) && v.Error == "" && rep == nil
	h.render(rq, status, "security", v)
	return nil
}

// authorize starts the admin-consent round trip (Step 1) and sends the
// browser to the cloud's consent page.
func (h *handler) authorize(rq *request) error {
	f := rq.r.PostForm
	tenant := strings.TrimSpace(f.Get("tenant_id"))
	var err error
	var consentURL string
	cloud := h.cloud(rq)
	if tenant == "" && cloud != nil {
		err = invalid("tenant_id", cloud.Authorization(rq.org).TenantMissing)
	} else {
		consentURL, err = h.cfg.CMK.Authorize(rq.r.Context(), rq.p.Name, rq.org, tenant)
	}
	if err != nil {
		v := &view{Form: h.keyForm(rq, f)}
		v.formError(err, keyFields(cloud))
		return h.renderSecurity(rq, h.errStatus(rq, err), v, true, nil)
	}
	return rq.redirect(consentURL)
}

// keyForm is what the user typed in the Security forms, the rest from the
// org's configuration.
func (h *handler) keyForm(rq *request, f url.Values) url.Values {
	rec := rq.status.Record
	out := url.Values{"tenant_id": {rec.TenantID}}
	if cloud := h.cloud(rq); cloud != nil {
		for _, fl := range cloud.Fields() {
			out[fl.Name] = []string{configuredValue(rec, fl, cloud)}
		}
	}
	for k := range out {
		if vs, ok := f[k]; ok {
			out[k] = vs
		}
	}
	return out
}

// configure stores the key (Step 2) and tests it; with action=save it
// also enables it when every check passes.
func (h *handler) configure(rq *request) error {
	ctx := rq.r.Context()
	f := rq.r.PostForm
	save := f.Get("action") == "save"
	v := &view{Form: h.keyForm(rq, f)}
	cloud := h.cloud(rq)
	fields := map[string]string{}
	if cloud != nil {
		for _, fl := range cloud.Fields() {
			fields[fl.Name] = f.Get(fl.Name)
		}
	}
	cloudName := ""
	if cloud != nil {
		cloudName = cloud.Name()
	}
	rec, err := h.cfg.CMK.ConfigureKey(ctx, rq.p.Name, rq.org, cloudName, fields)
	if err != nil {
		v.formError(err, keyFields(cloud))
		return h.renderSecurity(rq, h.errStatus(rq, err), v, true, nil)
	}
	rep := h.cfg.CMK.Test(ctx, rq.org)
	if rq.status, err = h.cmkStatus(rq); err != nil {
		return err
	}
	if !save {
		switch {
		case !rep.OK:
			v.Error = "Test Managed Key found problems: fix the failed checks below, then test again."
		case rep.Count(cmk.Warn) > 0:
			v.Flash = "Test Managed Key " + strings.ToLower(rep.Summary()) + ": review the warnings below, then click Save to start using the key."
		default:
			v.Flash = "Test Managed Key passed. Click Save to start using the key."
		}
		return h.renderSecurity(rq, http.StatusOK, v, true, &rep)
	}
	if !rep.OK {
		v.Error = "Not saved: Test Managed Key found problems. Fix the failed checks below and save again."
		return h.renderSecurity(rq, http.StatusConflict, v, true, &rep)
	}
	if rec.State == cmk.StateActive && rec.KeyURI == rec.ActiveKeyURI {
		// The key in use stays; only its settings (version) changed.
		return rq.redirect(orgPath(rq.org, "security?done=saved"))
	}
	if _, err := h.cfg.CMK.Enable(ctx, rq.p.Name, rq.org); err != nil {
		v.Error = fault.Message(err)
		return h.renderSecurity(rq, h.errStatus(rq, err), v, true, &rep)
	}
	if rep.Count(cmk.Warn) > 0 {
		return rq.redirect(orgPath(rq.org, "security?done=enabling-warned"))
	}
	return rq.redirect(orgPath(rq.org, "security?done=enabling"))
}

// testKey runs Test Managed Key on the key as configured, without changing
// anything: the Security page offers it while the key cannot be changed,
// above all while it is revoked, when an admin needs the checks most.
func (h *handler) testKey(rq *request) error {
	rec := rq.status.Record
	if rec.KeyURI == "" {
		v := &view{Error: "No key is configured yet: complete Step 2 first."}
		return h.renderSecurity(rq, http.StatusConflict, v, true, nil)
	}
	rep := h.cfg.CMK.Test(rq.r.Context(), rq.org)
	v := &view{}
	switch {
	case !rep.OK:
		v.Error = "Test Managed Key found problems: the failed checks below say what to fix."
	case rep.Count(cmk.Warn) > 0:
		v.Flash = "Test Managed Key " + strings.ToLower(rep.Summary()) + "."
	default:
		v.Flash = "Test Managed Key passed."
	}
	if rec.State == cmk.StateRevoked && rep.OK {
		v.Flash += " orgkms notices within one probe interval and serves the org again."
	}
	return h.renderSecurity(rq, http.StatusOK, v, true, &rep)
}

// disableData is the disable confirmation page's own data.
type disableData struct {
	CMK      cmkView
	Reset    bool // before activation: turning off forgets the configuration
	Possible bool
	Why      string // why disabling is not possible now
	Lost     bool   // the key was purged: the way out is a fallback
	Impact   *impactView
}

func (h *handler) disablePage(rq *request) error {
	return h.renderDisable(rq, http.StatusOK, &view{})
}

func (h *handler) renderDisable(rq *request, status int, v *view) error {
	rec := rq.status.Record
	d := disableData{CMK: h.cmkView(rq.status)}
	switch rec.State {
	case cmk.StateAuthorized:
		d.Reset, d.Possible = true, true
	case cmk.StateActive:
		d.Possible = true
	case cmk.StatePlatform:
		d.Why = "Customer managed keys are already off for this org."
	case cmk.StateLost:
		d.Lost = true
	case cmk.StateRevoked:
		d.Why = "orgkms must unwrap the org's root key with your key to move it back to the platform key, and your key cannot be used now. Restore access to the key first."
	default:
		d.Why = "A key operation is in progress (" + string(rec.State) + "). Try again when it finishes."
	}
	if d.Lost {
		d.Impact = h.impact(rq, cmk.ImpactFallback, "", "Fall back")
	} else {
		d.Impact = h.impact(rq, cmk.ImpactDisable, "", "Disable")
	}
	v.Title, v.Active, v.Data = "Disable customer managed keys", "security", d
	h.render(rq, status, "disable", v)
	return nil
}

// fallback gives a lost org a new platform root key (cmk.Service.FallBack).
func (h *handler) fallback(rq *request) error {
	if rq.r.FormValue("confirm_data_loss") != "yes" {
		return h.renderDisable(rq, http.StatusBadRequest, &view{Error: "tick the box to confirm that the data encrypted before is lost for good"})
	}
	if _, err := h.cfg.CMK.FallBack(rq.r.Context(), rq.p.Name, rq.org); err != nil {
		return h.renderDisable(rq, h.errStatus(rq, err), &view{Error: fault.Message(err)})
	}
	return rq.redirect(orgPath(rq.org, "security?done=fallback"))
}

func (h *handler) disable(rq *request) error {
	was := rq.status.State
	if was == cmk.StatePlatform {
		return rq.redirect(orgPath(rq.org, "security?done=already-reset"))
	}
	if _, err := h.cfg.CMK.Disable(rq.r.Context(), rq.p.Name, rq.org); err != nil {
		return h.renderDisable(rq, h.errStatus(rq, err), &view{Error: fault.Message(err)})
	}
	if was == cmk.StateAuthorized {
		return rq.redirect(orgPath(rq.org, "security?done=reset"))
	}
	return rq.redirect(orgPath(rq.org, "security?done=disabling"))
}

// configuredValue is field f of the org's configured key (not of a key in
// use that is being replaced).
func configuredValue(rec cmk.Record, f cmk.Field, cloud cmk.Cloud) string {
	if rec.KeyURI == "" || !strings.HasPrefix(rec.KeyURI, cloud.Scheme()+":") {
		return "" // none, or a key of another cloud
	}
	loc, _ := cloud.Locate(rec.KeyURI)
	loc.Container, loc.Name = rec.VaultURI, rec.KeyName
	return cloud.KeyFields(loc, rec.KeyVersion)[f.Name]
}
