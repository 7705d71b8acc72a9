// Package api serves the orgkms HTTP JSON API under /v1, plus /healthz,
// /readyz, /metrics and the OpenAPI document at /v1/openapi.json.
//
// # Routes and authorization
//
// Every route is declared once in routes.go with the [auth.Action] it needs;
// the middleware authenticates the bearer token and checks the action
// against the org named in the path before the handler runs. A test walks
// the whole route × role matrix. One route checks a second action in its
// handler: the impact preview (impact.go) needs audit.read, and also the
// action of the step it previews, which only its query names.
//
// # Errors
//
// Handlers return errors; writeError is the only place that maps a
// fault.Kind to an HTTP status and the body
// {"error":{"code":"...","message":"...","request_id":"..."}}. It never sends
// the text of an underlying error to the client, and it logs once. A path
// that has routes, but not for the request's method, answers 405
// method_not_allowed with Allow. Messages, CMK status texts and an org's
// audit details never say where the platform master key lives
// (keys.Service.RedactPlatformKey).
package api
