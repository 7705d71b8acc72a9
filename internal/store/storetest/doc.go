// Package storetest is the conformance suite of orgkms storage: [Run]
// checks that an implementation of [keys.Store] and [auth.Store] keeps the
// contract every dialect shares, so SQLite and PostgreSQL behave the same.
//
// # What it checks
//
//   - Round trips of every object, with times exact at microsecond
//     precision and byte slices exact.
//   - Error kinds: NotFound, Conflict and Invalid, asserted with
//     [fault.KindOf], never by error text.
//   - Atomicity: a change and its audit event are stored together or not at
//     all; a lost rotation race is a Conflict that leaves nothing behind.
//   - The audit hash chain stays gap-free and verifiable under concurrent
//     appends ([audit.Verify]).
//   - Tenant isolation: no method returns one org's rows for another.
//
// Each case runs in parallel on a fresh store from the open function, so
// open must be safe for concurrent use and must isolate stores.
//
// [keys.Store]: github.com/orgkms/orgkms/internal/keys.Store
// [auth.Store]: github.com/orgkms/orgkms/internal/auth.Store
// [fault.KindOf]: github.com/orgkms/orgkms/internal/fault.KindOf
// [audit.Verify]: github.com/orgkms/orgkms/internal/audit.Verify
package storetest
