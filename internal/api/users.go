package api

import (
	"net/http"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
)

func userJSON(u auth.User) client.User {
	out := client.User{ID: u.ID, Org: u.OrgID, Email: u.Email, Name: u.Name, CreatedAt: u.CreatedAt, Disabled: u.Disabled, Roles: []string{}}
	for _, r := range u.Roles {
		out.Roles = append(out.Roles, string(r))
	}
	return out
}

func (h *Handler) requireUsers() error {
	if h.users == nil {
		return &fault.Error{Kind: fault.NotFound, Reason: "console users are not enabled on this server"}
	}
	return nil
}

func (h *Handler) listUsersOf(c *call, org string) error {
	if err := h.requireUsers(); err != nil {
		return err
	}
	us, err := h.users.List(c.r.Context(), org)
	if err != nil {
		return err
	}
	out := client.UserList{Users: []client.User{}}
	for _, u := range us {
		out.Users = append(out.Users, userJSON(u))
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) createUserIn(c *call, org string) error {
	if err := h.requireUsers(); err != nil {
		return err
	}
	var req client.CreateUserRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	nr := auth.NewUserRequest{OrgID: org, Email: req.Email, Name: req.Name, Password: req.Password}
	for _, r := range req.Roles {
		role, err := auth.ParseRole(r)
		if err != nil {
			return err
		}
		nr.Roles = append(nr.Roles, role)
	}
	if len(nr.Roles) == 0 {
		return fault.Invalidf("roles", "give at least one role")
	}
	if err := auth.CheckGrant(c.p, org, nil, nr.Roles, false); err != nil {
		return err
	}
	u, err := h.users.Create(c.r.Context(), c.actor(), nr)
	if err != nil {
		return err
	}
	return c.reply(http.StatusCreated, userJSON(u))
}

func (h *Handler) listUsers(c *call) error {
	if _, err := h.keys.GetOrg(c.r.Context(), c.org); err != nil {
		return err
	}
	return h.listUsersOf(c, c.org)
}

func (h *Handler) createUser(c *call) error {
	if _, err := h.keys.GetOrg(c.r.Context(), c.org); err != nil {
		return err
	}
	return h.createUserIn(c, c.org)
}

func (h *Handler) listPlatformUsers(c *call) error  { return h.listUsersOf(c, "") }
func (h *Handler) createPlatformUser(c *call) error { return h.createUserIn(c, "") }
