// Package sqlite stores orgkms data in one SQLite file, through the pure-Go
// driver modernc.org/sqlite. [Store] implements [keys.Store], [auth.Store],
// [auth.UserStore] and [cmk.Store] and passes [storetest.Run],
// [storetest.RunCMK] and [storetest.RunUsers].
//
// # Connections
//
// The file is opened in WAL mode with two pools: one writer connection,
// whose transactions begin IMMEDIATE (they hold the write lock from the
// start, so they never fail half-way with SQLITE_BUSY), and a small pool of
// query-only readers, which in WAL mode never wait for the writer. Writers
// queue in Go for the one connection instead of spinning on the file lock.
// Hot queries are prepared once at [Open]. A [Memory] database uses a single
// connection for both.
//
// # Operator faults
//
// [Open] holds an flock(2) on DATA_DIR/orgkms.lock ([LockFile]) until
// Close: a second store on the directory, in any process, is refused with
// Conflict naming the directory and the holder's process ID. Every SQLite
// error is classified in one function (classify): a full disk, a read-only
// file system, an I/O error, a busy or unopenable database are Unavailable
// with a Retry-After and a reason naming the condition (never a path).
// Every write first checks that the path still names the open file: a
// deleted database is written back from the open one (VACUUM INTO, which
// includes the write-ahead log) and every connection moves to it, so
// nothing committed is lost; a database replaced by another file refuses
// writes until the original is back. [Store.Health] commits a one-page
// probe for /readyz.
//
// # Schema
//
// Migrations are the files migrations/NNNN_name.sql, embedded, numbered
// from 0001 without gaps, applied forward-only in one transaction each and
// recorded in schema_migrations. [Open] applies them; with
// [Config.NoMigrate] it only checks the version and returns a Conflict that
// says to run `orgkms migrate`. Times are stored as fixed-width UTC text at
// microsecond precision, which sorts in time order.
//
// # Invariants
//
//   - The database file is created with mode 0600; SQLite gives its -wal and
//     -shm files the same mode.
//   - No write is acknowledged into a file that is no longer at the path;
//     connections to a moved-away file all close before one opens to the
//     restored file (SQLite's last connection removes -wal and -shm by
//     name).
//   - Every state-changing method writes its audit event in the transaction
//     of the change, chained to the org's last event read in that same
//     transaction, so concurrent appends never fork or gap the chain.
//   - Every error is a *fault.Error (see [Store] methods for the kinds).
//   - An org has at most one active and one pending root key wrapping, and
//     at most one pending or running CMK job (partial unique indexes).
//     [Store.ClaimJob] selects and leases a job in one write transaction,
//     so a job is never leased to two owners at once.
//   - A user belongs to an existing org (a foreign key) or, with a NULL
//     org_id, to the platform; its changes are audited in that org's chain
//     or in [audit.Platform]'s. Emails are unique, compared exactly.
//   - A session stores only the SHA-256 of its secret, and goes with its
//     user (ON DELETE CASCADE). Expired sessions stay until
//     [Store.DeleteExpiredSessions] purges them.
//
// [keys.Store]: github.com/orgkms/orgkms/internal/keys.Store
// [auth.Store]: github.com/orgkms/orgkms/internal/auth.Store
// [auth.UserStore]: github.com/orgkms/orgkms/internal/auth.UserStore
// [audit.Platform]: github.com/orgkms/orgkms/internal/audit.Platform
// [cmk.Store]: github.com/orgkms/orgkms/internal/cmk.Store
// [storetest.Run]: github.com/orgkms/orgkms/internal/store/storetest.Run
// [storetest.RunCMK]: github.com/orgkms/orgkms/internal/store/storetest.RunCMK
// [storetest.RunUsers]: github.com/orgkms/orgkms/internal/store/storetest.RunUsers
package sqlite
