package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// flashes are the messages a page shows after a successful form post
// (post/redirect/get with ?done=CODE). Only these fixed texts are shown:
// nothing from the query string is reflected.
var flashes = map[string]string{
	"user-created":    "User created.",
	"roles-saved":     "Roles saved.",
	"key-created":     "Key created.",
	"key-rotated":     "Key rotated: new ciphertexts use the new version; older versions still decrypt.",
	"min-version":     "Minimum decryption version saved.",
	"enabling":        "All checks passed. orgkms is moving the org's root key to your key.",
	"enabling-warned": "Test Managed Key passed with warnings (Test Managed Key shows them again). orgkms is moving the org's root key to your key.",
	"disabling":       "orgkms is moving the org's root key back to the platform key.",
	"reset":           "Customer managed keys are off: the authorization and key configuration were removed.",
	"fallback":        "The org now uses a new platform root key. Data encrypted before was lost with the purged key; new data works.",
	"consent-ok":      "Authorization complete: orgkms may now use keys in your tenant. Continue with Step 2.",
	"consent-fail":    "Authorization was not completed (the previous page says why). Start again with Step 1.",
	"already-reset":   "Customer managed keys are already off.",
	"saved":           "Key settings saved; the key in use did not change.",
	"webhook-deleted": "Webhook deleted, with its pending deliveries and history.",
}

// stateText explains each CMK lifecycle state in the customer's words.
var stateText = map[cmk.State]string{
	cmk.StatePlatform:     "The org's keys are protected by the platform's master key. Enable customer managed keys to protect them with a key you control in your own key vault.",
	cmk.StateAuthorized:   "orgkms is authorized in your tenant, but your key is not in use yet. Configure your key (Step 2), test it and save.",
	cmk.StateActivating:   "orgkms is moving the org's root key to your key: it wraps the root key with your key, checks that it unwraps, then switches to it and deletes the copy wrapped by the platform key. This takes seconds.",
	cmk.StateActive:       "The org's root key is wrapped only by your key. If you disable or delete the key, or remove orgkms' access to it, orgkms stops using the org's data within seconds.",
	cmk.StateRotating:     "A new version of your key was detected. orgkms is re-wrapping the org's root key with it; nothing to do. Keep the old version enabled until this finishes.",
	cmk.StateReplacing:    "orgkms is moving the org's root key from the old key to the new one. Keep the old key usable until this finishes; afterwards you may delete it.",
	cmk.StateRevoked:      "Your key cannot be used: it is disabled, expired, deleted, or orgkms' access to it was removed. orgkms refuses the org's encrypt and decrypt requests until access is restored, then resumes by itself.",
	cmk.StateDeactivating: "orgkms is moving the org's root key back to the platform key. Keep your key usable until this finishes; afterwards orgkms no longer uses it.",
	cmk.StateLost:         "Your key was purged from its vault. The org's data protected by it is unrecoverable.",
}

// stateOrder lists the states in lifecycle order, for the explanations.
var stateOrder = []cmk.State{cmk.StatePlatform, cmk.StateAuthorized, cmk.StateActivating, cmk.StateActive, cmk.StateRotating,
	cmk.StateReplacing, cmk.StateRevoked, cmk.StateDeactivating, cmk.StateLost}

type stateInfo struct {
	State   string
	Text    string
	Current bool
}

func stateInfos(cur cmk.State) []stateInfo {
	out := make([]stateInfo, len(stateOrder))
	for i, s := range stateOrder {
		out[i] = stateInfo{State: string(s), Text: stateText[s], Current: s == cur}
	}
	return out
}

// jobView is a re-wrap job as the console shows it.
type jobView struct {
	Kind     string
	Title    string
	State    string
	Progress int
	Error    string // the last error of a job that retries
}

var jobTitles = map[cmk.JobKind]string{
	cmk.JobActivate:   "Activating your key",
	cmk.JobRotate:     "Following your key's new version",
	cmk.JobReplace:    "Replacing the key",
	cmk.JobDeactivate: "Moving back to the platform key",
}

var jobProgress = map[string]int{"": 5, "copied": 40, "verified": 70, "switched": 100}

// runningJob returns the org's job while it is pending or running.
func runningJob(st cmk.Status) *jobView {
	j := st.Job
	if j == nil || (j.State != cmk.JobPending && j.State != cmk.JobRunning && j.State != cmk.JobStalled) {
		return nil
	}
	v := &jobView{Kind: string(j.Kind), Title: jobTitles[j.Kind], State: string(j.State), Progress: jobProgress[j.Step], Error: j.Error}
	if j.State == cmk.JobStalled && v.Error == "" {
		v.Error = "stalled: the orgkms node working on it stopped; it is resumed when orgkms restarts or its lease expires, and your data stays protected by the current key meanwhile"
	}
	return v
}

// busy reports whether the org's CMK is in a transitional state whose page
// reloads itself.
func busy(st cmk.Status) bool {
	switch st.State {
	case cmk.StateActivating, cmk.StateRotating, cmk.StateReplacing, cmk.StateDeactivating:
		return true
	}
	return runningJob(st) != nil
}

// cmkView is the CMK status as the overview and the Security page show it.
type cmkView struct {
	Rec        cmk.Record
	State      string
	StateText  string
	Protection string
	MasterKey  string
	Version    string
	LastProbe  string
	ProbeOK    bool
	Job        *jobView
	// Receipts is the org's latest key state change and how many live
	// nodes honoured it: "revoked at T: honoured by 3 of 3 nodes at T";
	// Unconfirmed names the live nodes that have not.
	Receipts    string
	Unconfirmed string
	// The org's cloud (when customer managed keys are on): its name and
	// display name, the label of its key versions, and the key in use (else
	// the configured one) by the cloud's own fields (cloudfacts.go).
	Cloud, CloudName, VersionLabel string
	KeyFacts                       []configuredField
	// Impact is the overview's preview of a revocation, for the org's
	// admin and key_admin only; nil otherwise (impact.go).
	Impact *impactView
}

func (h *handler) cmkView(st cmk.Status) cmkView {
	r := st.Record
	v := cmkView{Rec: r, State: string(r.State), StateText: stateText[r.State], Job: runningJob(st)}
	if r.ActiveKeyURI != "" {
		v.Protection, v.MasterKey, v.Version = "Customer managed key", r.ActiveKeyURI, r.ActiveVersion
		if where := h.keyWhere(r.ActiveKeyURI); where != "" {
			v.Protection += ": " + where
		} else if vault, key := vaultAndKey(r.ActiveKeyURI); vault != "" {
			v.Protection += ": key " + key + " in vault " + vault
		}
	} else {
		v.Protection, v.MasterKey, v.Version = "Platform key", "the platform's master key", "not applicable (platform key)"
		if h.cfg.Keys != nil {
			v.MasterKey = h.cfg.Keys.PlatformKey().Provider + " (platform)"
		}
	}
	switch {
	case r.LastProbeAt.IsZero() && r.ActiveKeyURI == "":
		v.LastProbe = "not probed: the platform key is not checked per org"
	case r.LastProbeAt.IsZero():
		v.LastProbe = "not probed yet"
	case r.LastProbeError == "":
		v.LastProbe, v.ProbeOK = fmtTime(r.LastProbeAt)+": key usable", true
	default:
		v.LastProbe = fmtTime(r.LastProbeAt) + ": " + r.LastProbeError
	}
	h.cloudFacts(&v, st)
	if rv := st.Revocation; rv != nil {
		v.Receipts = fmt.Sprintf("%s at %s: honoured by %d of %d nodes", changeText[rv.Reason], fmtTime(rv.ChangedAt), rv.Honoured, rv.Live)
		if !rv.LatestReceipt.IsZero() {
			v.Receipts += " at " + fmtTime(rv.LatestReceipt)
		}
		v.Unconfirmed = strings.Join(rv.Pending, ", ")
	}
	return v
}

// changeText names a generation's reason (cmk.Bump*) for the console.
var changeText = map[string]string{
	cmk.BumpRevoked: "Revoked", cmk.BumpLost: "Lost", cmk.BumpRestored: "Restored", cmk.BumpActivated: "Activated",
	cmk.BumpRotated: "Rotated", cmk.BumpReplaced: "Replaced", cmk.BumpDeactivated: "Deactivated",
	cmk.BumpFellBack: "Fell back to a new platform root key", cmk.BumpPurged: "Keys purged by an operator",
}

// vaultAndKey names the vault and key of a master key URI such as
// azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk?tenant=....
func vaultAndKey(uri string) (vault, key string) {
	ref, err := masterkey.ParseRef(uri)
	if err != nil {
		return "", ""
	}
	id, _, _ := strings.Cut(ref.ID, "?")
	host, path, _ := strings.Cut(id, "/")
	vault, _, _ = strings.Cut(host, ".")
	key = path[strings.LastIndex(path, "/")+1:]
	if vault == "" || key == "" {
		return "", ""
	}
	return vault, key
}

func (h *handler) overview(rq *request) error {
	return h.renderOverview(rq, http.StatusOK, &view{Flash: lifecycleFlashes[rq.r.URL.Query().Get("done")]})
}

func (h *handler) renderOverview(rq *request, status int, v *view) error {
	cv := h.cmkView(rq.status)
	if rq.allowed(auth.ActCMKManage) {
		// What a revocation would refuse now: every call of the last 24 h
		// (impact.go); the confirmation pages preview each step.
		cv.Impact = h.impact(rq, cmk.ImpactRevoke, "", "Revocation")
	}
	v.Title, v.Active, v.Refresh, v.Data = "Overview", "overview", busy(rq.status), cv
	h.render(rq, status, "overview", v)
	return nil
}

// orgs lists the orgs for platform operators; org users go to their org.
func (h *handler) orgs(rq *request) error {
	if !auth.Allowed(rq.p, auth.ActOrgList, "") {
		if rq.user.OrgID != "" {
			return rq.redirect(homeOf(rq.user))
		}
		return errForbidden
	}
	list, err := h.cfg.Keys.ListOrgs(rq.r.Context(), keys.ListOptions{After: rq.r.URL.Query().Get("after"), Limit: 200})
	if err != nil {
		return err
	}
	type row struct {
		ID, Name, State string
		Life, LifeText  string // the org's deletion state (deletion.go)
		CanDelete       bool
	}
	data := struct {
		Orgs []row
		More string
	}{}
	for _, o := range list {
		state := "unknown"
		if h.cfg.CMK != nil {
			if st, err := h.cfg.CMK.Status(rq.r.Context(), o.ID); err == nil {
				state = string(st.State)
			}
		}
		l, err := h.cfg.Keys.OrgLifecycle(rq.r.Context(), o.ID)
		if err != nil {
			return err
		}
		data.Orgs = append(data.Orgs, row{ID: o.ID, Name: o.Name, State: state, Life: orgStateClass(l), LifeText: orgLifeText(l),
			CanDelete: h.cfg.Shred != nil && l.State == keys.LifecycleEnabled})
	}
	if len(list) == 200 {
		data.More = list[len(list)-1].ID
	}
	h.render(rq, http.StatusOK, "orgs", &view{Title: "Orgs", Active: "orgs", Data: data})
	return nil
}

// keysData is the Keys page's own data.
type keysData struct {
	Keys      []keyRow // with their lifecycle (deletion.go)
	CanManage bool
	Locked    bool   // the org is pending deletion or deleted: its keys cannot change
	Lifecycle bool   // the keys can be disabled, enabled and deleted here
	ErrKey    string // the key whose form failed
	ErrMsg    string
	ErrValue  string
}

func (h *handler) keys(rq *request) error {
	done := rq.r.URL.Query().Get("done")
	return h.renderKeys(rq, http.StatusOK, &view{Flash: orElse(flashes[done], lifecycleFlashes[done])}, keysData{})
}

func (h *handler) renderKeys(rq *request, status int, v *view, d keysData) error {
	ks, err := h.cfg.Keys.ListDataKeys(rq.r.Context(), rq.org)
	if err != nil {
		return err
	}
	if d.Keys, err = h.keyRows(rq, ks); err != nil {
		return err
	}
	d.CanManage, d.Locked, d.Lifecycle = rq.allowed(auth.ActKeyManage), rq.life.State != keys.LifecycleEnabled, h.cfg.Shred != nil
	v.Title, v.Active, v.Data = "Keys", "keys", d
	h.render(rq, status, "keys", v)
	return nil
}

func (h *handler) createKey(rq *request) error {
	name := rq.r.PostForm.Get("name")
	if _, err := h.cfg.Keys.CreateDataKey(rq.r.Context(), rq.p.Name, rq.org, name); err != nil {
		v := &view{Form: rq.r.PostForm}
		v.formError(err, map[string]string{"name": "name"})
		return h.renderKeys(rq, h.errStatus(rq, err), v, keysData{})
	}
	return rq.redirect(orgPath(rq.org, "keys?done=key-created"))
}

func (h *handler) rotateKey(rq *request) error {
	name := rq.r.PathValue("key")
	if _, err := h.cfg.Keys.RotateDataKey(rq.r.Context(), rq.p.Name, rq.org, name); err != nil {
		return h.renderKeys(rq, h.errStatus(rq, err), &view{}, keysData{ErrKey: name, ErrMsg: fault.Message(err)})
	}
	return rq.redirect(orgPath(rq.org, "keys?done=key-rotated"))
}

func (h *handler) setMinVersion(rq *request) error {
	name := rq.r.PathValue("key")
	typed := rq.r.PostForm.Get("min_decryption_version")
	n, perr := strconv.ParseUint(typed, 10, 32)
	var err error
	if perr != nil {
		err = invalid("min_decryption_version", "enter a version number such as 2")
	} else {
		_, err = h.cfg.Keys.SetMinDecryptionVersion(rq.r.Context(), rq.p.Name, rq.org, name, uint32(n))
	}
	if err != nil {
		return h.renderKeys(rq, h.errStatus(rq, err), &view{}, keysData{ErrKey: name, ErrMsg: reasonOf(err), ErrValue: typed})
	}
	return rq.redirect(orgPath(rq.org, "keys?done=min-version"))
}
