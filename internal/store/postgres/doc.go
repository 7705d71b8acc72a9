// Package postgres stores orgkms data in PostgreSQL, through pgx
// (github.com/jackc/pgx/v5: a pgxpool under database/sql). [Store]
// implements [keys.Store], [auth.Store], [auth.UserStore] and [cmk.Store]
// and passes the same suites as package sqlite: [storetest.Run],
// [storetest.RunCMK] and [storetest.RunUsers]. Unlike SQLite, any number
// of orgkms processes may share one database.
//
// # Connections
//
// [Open] takes a postgres:// URL and a pool size, a statement timeout and
// a connect timeout, each with a default ([Config]). The URL's password is
// never logged and is scrubbed from every error Open returns. Sessions run
// in UTC with the statement timeout as their statement_timeout.
//
// # Schema
//
// Migrations are the files migrations/NNNN_name.sql, embedded, numbered
// from 0001 without gaps with the same numbers as SQLite's (a test holds
// it), applied forward-only in one transaction each and recorded in
// schema_migrations. Each migration transaction first takes a
// transaction-scoped advisory lock of the schema, so of several processes
// starting at once each migration is applied exactly once. [Open] applies
// them; with [Config.NoMigrate] it only checks the version and returns a
// Conflict that names the migrations to apply with `orgkms migrate`. Times
// are timestamptz at microsecond precision, read back in UTC; ordered text
// (IDs, names, emails) is COLLATE "C", byte order as in SQLite.
//
// # Generations
//
// Raising an org's generation (cmk.Record.Bump, [Store.BumpGeneration],
// [Store.BumpAllGenerations]) fires the org_generations trigger, which
// notifies channel orgkms_generation ("GENERATION ORG_ID") when the
// transaction commits. [Store.ListenGenerations] listens on a dedicated
// connection outside the pool; package cluster reconnects it with backoff
// and checks every generation after each connect.
//
// # Concurrency
//
// Transactions run in read committed. Where SQLite's single writer
// serialized writers, this package locks explicitly:
//
//   - Audit chains: an append locks the chain's head row (audit_heads) for
//     the rest of its transaction, so two writers of one org's chain, on
//     one node or on two, take turns and the chain stays one verifiable
//     chain.
//   - CMK records: a write names the revision it read and matches only that
//     revision (compare and set on the row), so of two concurrent writers
//     of one revision one wins and the other gets a Conflict.
//   - Jobs: [Store.ClaimJob] leases the oldest claimable job in one
//     statement with FOR UPDATE SKIP LOCKED; concurrent claims never lease
//     one job twice. The lease owner (a node ID with a random suffix per
//     claim) is the fencing token: every job write matches it in the same
//     transaction, so a claim that lost its lease can never commit a step.
//   - Root key wrappings and jobs of one org: writers lock the org's row
//     first, so replacing a pending wrapping and switching to it take turns.
//   - Consent requests: a take deletes and reads the row in one statement,
//     so of concurrent takes one gets the request.
//
// A transaction the server aborts for a deadlock or a serialization
// failure is run again, a few times, before it is reported as Unavailable.
//
// # Invariants
//
//   - Every state-changing method writes its audit event in the
//     transaction of the change.
//   - Every error is a *fault.Error (see classify for the kinds); reasons
//     never name a host, and no error of Open contains the URL's password.
//   - An org has at most one active and one pending root key wrapping, and
//     at most one pending or running CMK job (partial unique indexes).
//   - A user belongs to an existing org (a foreign key) or, with a NULL
//     org_id, to the platform. A session stores only the SHA-256 of its
//     secret and goes with its user (ON DELETE CASCADE).
//
// [keys.Store]: github.com/orgkms/orgkms/internal/keys.Store
// [auth.Store]: github.com/orgkms/orgkms/internal/auth.Store
// [auth.UserStore]: github.com/orgkms/orgkms/internal/auth.UserStore
// [cmk.Store]: github.com/orgkms/orgkms/internal/cmk.Store
// [storetest.Run]: github.com/orgkms/orgkms/internal/store/storetest.Run
// [storetest.RunCMK]: github.com/orgkms/orgkms/internal/store/storetest.RunCMK
// [storetest.RunUsers]: github.com/orgkms/orgkms/internal/store/storetest.RunUsers
package postgres
