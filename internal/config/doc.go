// Package config loads the orgkms server configuration — the command's own
// defaults, a JSON file, ORGKMS_* environment variables, then the flags the
// user set — fills the defaults and validates it.
//
// # Invariants
//
//   - orgkms serve, migrate and dev read their settings through the same
//     [Load], so an ORGKMS_* variable means the same thing to each.
//   - Load returns either an error that names the file, variable or field
//     to fix, or a configuration that passes [Config.Validate].
//   - No package-level state.
package config
