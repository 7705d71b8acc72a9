package console

import (
	"strings"

	"github.com/orgkms/orgkms/internal/cmk"
)

// cloudWording is what a cloud may add to how the console names its keys;
// clouds without it (Azure) keep the vault wording of [vaultAndKey].
type cloudWording interface {
	// Where names the key at loc in the cloud's console's words, e.g.
	// "AWS KMS key ID in AWS account 111122223333 (eu-west-2)".
	Where(loc cmk.KeyLocation) string
	// VersionLabel labels the key's current version, e.g. "Current key
	// material".
	VersionLabel() string
}

// cloudOfURI returns the offered cloud of a master-key URI, or nil.
func (h *handler) cloudOfURI(uri string) cmk.Cloud {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok || h.cfg.CMK == nil {
		return nil
	}
	for _, c := range h.cfg.CMK.Clouds() {
		if c.Scheme() == scheme {
			return c
		}
	}
	return nil
}

// keyWhere names the key of uri in its cloud's words; "" when the cloud
// has no wording of its own.
func (h *handler) keyWhere(uri string) string {
	c := h.cloudOfURI(uri)
	w, ok := c.(cloudWording)
	if !ok {
		return ""
	}
	loc, ok := c.Locate(uri)
	if !ok {
		return ""
	}
	return w.Where(loc)
}

// cloudFacts fills in the org's cloud and its key by the cloud's fields:
// what the customer entered, and the account orgkms is authorized in.
func (h *handler) cloudFacts(v *cmkView, st cmk.Status) {
	if h.cfg.CMK == nil || st.Cloud == "" {
		return
	}
	c := h.cfg.CMK.Cloud(st.Cloud)
	if c == nil {
		return
	}
	v.Cloud, v.CloudName, v.VersionLabel = c.Name(), c.DisplayName(), "Current key version"
	if w, ok := c.(cloudWording); ok {
		v.VersionLabel = w.VersionLabel()
	}
	labels := map[string]bool{}
	for _, f := range c.Fields() {
		labels[f.Label] = true
		if val := st.Fields[f.Name]; val != "" && !f.Version {
			v.KeyFacts = append(v.KeyFacts, configuredField{Label: f.Label, Value: val})
		}
	}
	if a := c.Authorization(st.OrgID); st.TenantID != "" && a.TenantLabel != "" && !labels[a.TenantLabel] {
		v.KeyFacts = append(v.KeyFacts, configuredField{Label: a.TenantLabel, Value: st.TenantID})
	}
}
