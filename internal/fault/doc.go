// Package fault defines the one error type that crosses orgkms package
// boundaries, [Error], and its [Kind].
//
// # Kinds are part of the API
//
// A Kind picks the HTTP status, the stable error code, whether a caller may
// retry, the customer-facing message and the hint on what to do: one [Row]
// of one table, read by the API, the console and the CLI alike (testdata/
// table.golden pins it). The message is built from the
// fields of [Error] (Op, Resource, Permission, Provider, ...), never from the
// wrapped Err, which exists only for logs and [errors.As]. API, console and
// CLI all render the same text through [Message].
//
// # Invariants
//
// Nothing in this package ever formats key material: callers must never put
// secret bytes into any field of [Error].
//
// This is a leaf package: it imports only the standard library.
package fault
