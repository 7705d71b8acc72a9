// Package storetest is the conformance suite of orgkms storage: [Run]
// checks that an implementation of [keys.Store] and [auth.Store] keeps the
// contract every dialect shares, so SQLite and PostgreSQL behave the same;
// [RunCMK] does the same for [cmk.Store], and [RunUsers] for
// [auth.UserStore].
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
//   - CMK jobs: at most one open job per org, claims oldest first that
//     honour NotBefore and leases, a takeover after an expired lease that
//     makes the old owner's writes Conflicts, and no job leased twice by
//     concurrent claims. Consent requests are single use (also under
//     concurrent takes) and expire.
//   - Users: emails unique across orgs and the platform (also under
//     concurrent creates), lists per org by email, changes audited in the
//     org's chain or the platform's, sessions deleted one by one or per
//     user without touching other users'. A store (or its harness) that
//     implements [AuditFailer] also shows that a failed audit write leaves
//     the user unchanged.
//
// Each case runs in parallel on a fresh store from the open function, so
// open must be safe for concurrent use and must isolate stores.
//
// [keys.Store]: github.com/orgkms/orgkms/internal/keys.Store
// [auth.Store]: github.com/orgkms/orgkms/internal/auth.Store
// [auth.UserStore]: github.com/orgkms/orgkms/internal/auth.UserStore
// [cmk.Store]: github.com/orgkms/orgkms/internal/cmk.Store
// [fault.KindOf]: github.com/orgkms/orgkms/internal/fault.KindOf
// [audit.Verify]: github.com/orgkms/orgkms/internal/audit.Verify
package storetest
