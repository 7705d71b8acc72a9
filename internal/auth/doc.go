// Package auth holds principals, roles, API tokens and the one
// authorization policy that the API (and later the console) enforce.
//
// # Tokens
//
// An API token is "okms_" followed by 43 base64url characters (256 random
// bits). Only its SHA-256 hash is stored; a token is shown once, at
// creation. Each token has a principal name, an org scope ("" for the
// platform, meaning every org) and one or more roles.
//
// # Policy
//
// [Allowed] is the single authorization decision: every API route names an
// [Action] and the org it touches, and the route table test walks every
// route against every role.
package auth
