// Package store documents the storage layer of orgkms. It holds no code: the
// contract is [keys.Store], [auth.Store] and [auth.UserStore], defined by
// their consumers, and each SQL dialect implements it in its own package
// (sqlite, the embedded single-node default; postgres, for several nodes on
// one database). Every implementation passes the one
// dialect-independent suite in [storetest.Run] (and [storetest.RunUsers]).
//
// # Invariants
//
//   - Every state-changing method appends its audit event to the org's
//     hash-chained log in the same transaction as the change: a change is
//     never stored without its event, nor an event without its change.
//   - Tenant-scoped methods take the org ID right after ctx and every query
//     filters on org_id, so one org's rows are never returned for another.
//   - Every error is a *fault.Error: NotFound for missing rows, Conflict for
//     duplicates and lost races, Unavailable when the database is busy or
//     unreachable, Internal (wrapping the driver error) otherwise.
//   - Times are stored in UTC at microsecond precision and read back exactly;
//     byte slices (wrapped keys, token hashes) round-trip byte for byte.
//   - Migrations are forward-only, numbered NNNN_name.sql from 0001 without
//     gaps, one transaction each, embedded in the binary; a schema older or
//     newer than the binary knows is refused unless migrations are applied.
//
// [keys.Store]: github.com/orgkms/orgkms/internal/keys.Store
// [auth.Store]: github.com/orgkms/orgkms/internal/auth.Store
// [auth.UserStore]: github.com/orgkms/orgkms/internal/auth.UserStore
// [storetest.Run]: github.com/orgkms/orgkms/internal/store/storetest.Run
// [storetest.RunUsers]: github.com/orgkms/orgkms/internal/store/storetest.RunUsers
package store
