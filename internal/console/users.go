package console

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
)

// orgRoles are the roles a person can hold in an org, in display order.
var orgRoles = []roleInfo{
	{auth.RoleAdmin, "Admin", "manages users and roles, reads the audit log"},
	{auth.RoleKeyAdmin, "Key Admin", "manages data keys, reads the audit log; with Admin, manages the customer managed key"},
	{auth.RoleMember, "Member", "sees the org's key status, nothing secret"},
}

type roleInfo struct {
	Role  auth.Role
	Label string
	Help  string
}

type userRow struct {
	ID, Email, Name string
	Roles           []auth.Role
	CreatedAt       time.Time
	Self            bool
}

// Has reports whether the user holds role r.
func (u userRow) Has(r auth.Role) bool { return slices.Contains(u.Roles, r) }

type usersData struct {
	Users   []userRow
	Roles   []roleInfo
	ErrUser string // the user whose roles failed to save
	ErrMsg  string
}

// userFields maps fault fields to the new-user form's field names.
var userFields = map[string]string{"roles": "role"}

func (h *handler) users(rq *request) error {
	return h.renderUsers(rq, http.StatusOK, &view{Flash: flashes[rq.r.URL.Query().Get("done")]}, usersData{})
}

func (h *handler) renderUsers(rq *request, status int, v *view, d usersData) error {
	us, err := h.cfg.Users.List(rq.r.Context(), rq.org)
	if err != nil {
		return err
	}
	for _, u := range us {
		d.Users = append(d.Users, userRow{ID: u.ID, Email: u.Email, Name: u.Name, Roles: u.Roles, CreatedAt: u.CreatedAt, Self: u.ID == rq.user.ID})
	}
	d.Roles = orgRoles
	v.Title, v.Active, v.Data = "Users", "users", d
	h.render(rq, status, "users", v)
	return nil
}

// formRoles parses the role checkboxes.
func formRoles(form url.Values) ([]auth.Role, error) {
	var roles []auth.Role
	for _, s := range form["role"] {
		r, err := auth.ParseRole(s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil, invalid("roles", "choose at least one role (Member: sees the org's key status only)")
	}
	return roles, nil
}

func (h *handler) createUser(rq *request) error {
	f := rq.r.PostForm
	roles, err := formRoles(f)
	if err == nil {
		err = auth.CheckGrant(rq.p, rq.org, nil, roles, false)
	}
	if err == nil {
		_, err = h.cfg.Users.Create(rq.r.Context(), rq.p.Name, auth.NewUserRequest{OrgID: rq.org, Email: f.Get("email"), Name: f.Get("name"),
			Roles: roles, Password: f.Get("password")})
	}
	if err != nil {
		// Keep what was typed, except the password.
		v := &view{Form: url.Values{"email": {f.Get("email")}, "name": {f.Get("name")}, "role": f["role"]}}
		v.formError(err, userFields)
		if fault.KindOf(err) == fault.Conflict {
			v.Fields = map[string]string{"email": "a user with this email exists already"}
			v.Error = "A user with the email " + f.Get("email") + " exists already."
		}
		return h.renderUsers(rq, h.errStatus(rq, err), v, usersData{})
	}
	return rq.redirect(orgPath(rq.org, "users?done=user-created"))
}

var errNoUser = &fault.Error{Kind: fault.NotFound, Reason: "this user does not exist in the org"}

func (h *handler) setRoles(rq *request) error {
	u, err := h.cfg.Users.Get(rq.r.Context(), rq.r.PathValue("id"))
	if fault.KindOf(err) == fault.NotFound || (err == nil && u.OrgID != rq.org) {
		return errNoUser // never act on, or reveal, a user of another org
	}
	if err != nil {
		return err
	}
	roles, err := formRoles(rq.r.PostForm)
	if err == nil && u.ID == rq.user.ID && rq.user.OrgID == rq.org && !slices.Contains(roles, auth.RoleAdmin) {
		err = &fault.Error{Kind: fault.Conflict, Reason: "you cannot remove your own Admin role: ask another admin of the org to do it"}
	}
	if err == nil {
		err = auth.CheckGrant(rq.p, rq.org, u.Roles, roles, u.ID == rq.user.ID)
	}
	if err == nil {
		_, err = h.cfg.Users.SetRoles(rq.r.Context(), rq.p.Name, u.ID, roles)
	}
	if err != nil {
		return h.renderUsers(rq, h.errStatus(rq, err), &view{Error: u.Email + ": " + reasonOf(err)}, usersData{ErrUser: u.ID, ErrMsg: reasonOf(err)})
	}
	return rq.redirect(orgPath(rq.org, "users?done=roles-saved"))
}
