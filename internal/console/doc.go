// Package console serves the orgkms web console under /console/: sign-in,
// the org overview, Users and roles, Settings → Security (the customer
// managed key flow), Keys and the Audit log.
//
// Pages are rendered on the server with html/template from templates
// embedded in the binary; the console sends no JavaScript at all. Pages
// that show a running job reload themselves with a meta refresh.
//
// # Invariants
//
//   - Every page and every action is authorized by [auth.Allowed], the one
//     policy the API uses too, with the principal of the signed-in user and
//     the org named in the path. The Security tab needs [auth.ActCMKManage]
//     (admin and key_admin). An org's deletion follows the API's rule too:
//     [auth.ActOrgDelete], or admin and key_admin on the org when the
//     operator set orgs.self_delete.
//   - Lifecycle changes (disabling, enabling and deleting data keys,
//     deleting orgs) go through the same service calls as the API, so they
//     append the same audit events; destructive ones have a confirmation
//     page first.
//   - Every POST carries the session's anti-forgery token (csrf_token) and
//     is refused with 403 without changing anything when it is missing or
//     wrong; the sign-in form uses a double-submit cookie instead.
//   - Every response carries a strict Content-Security-Policy, nosniff,
//     Referrer-Policy same-origin and Cache-Control no-store.
//   - Errors are shown with [fault.Message], never with err.Error().
//   - The session cookie is HttpOnly, SameSite=Strict, and Secure under TLS
//     or when the public URL is https.
package console
