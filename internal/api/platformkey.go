package api

import (
	"net/http"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/fault"
)

// platformKeyStatus is GET /v1/platform-key (operator).
func (h *Handler) platformKeyStatus(c *call) error {
	if h.pk == nil {
		return &fault.Error{Kind: fault.NotFound, Resource: "platform key status"}
	}
	st, err := h.pk.Status(c.r.Context())
	if err != nil {
		return err
	}
	out := client.PlatformKeyStatus{Provider: st.Provider, Version: st.Version, OnCurrent: st.OnCurrent, OnOlder: st.OnOlder,
		Older: []client.PlatformKeyVersion{}, Rewrapping: st.Rewrapping, CMK: st.CMK, Unreadable: st.Unreadable,
		UnreadableOrgs: append([]string{}, st.UnreadableOrgs...), UnknownKeys: append([]string{}, st.UnknownKeys...), Hint: st.Hint}
	for _, v := range st.Older {
		out.Older = append(out.Older, client.PlatformKeyVersion{Version: v.Version, Previous: v.Previous, Orgs: v.Orgs})
	}
	if j := st.Job; j != nil {
		out.Job = &client.PlatformKeyJobStatus{ID: j.ID, State: j.State, Step: j.Step, Error: j.Error, Attempts: j.Attempts, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
	}
	return c.reply(http.StatusOK, out)
}
