// Package server is orgkms' composition root: [Open] builds the whole
// server — data directory, store, master-key drivers and their keepers,
// keys service, customer managed key service, tokens and users, API,
// console — from a config.Config, and [Server.Close] releases all of it.
// orgkms serve, orgkms dev and every test harness that needs a whole server
// build it here, so they run the same wiring.
//
// # Start-up order
//
//  1. The configuration is validated (config.Config.Validate).
//  2. The data directory is prepared (prepareDataDir: created with mode
//     0700; the place for start-up checks that must pass before anything
//     opens a file in it), and the node identity is read from
//     DATA_DIR/node-id (created on first start).
//  3. The store is opened; an outdated schema is refused unless
//     Options.Migrate.
//  4. The master-key drivers are registered (localkey and pkcs11 always; azurekv when
//     cmk.clouds offers azure), then the platform master key is created if it is
//     a missing local file, and probed: a server whose platform key cannot
//     wrap and unwrap does not start.
//  5. The keys service, then the CMK service; the keys service's guard
//     consults the CMK service, so a revoked org's root key is never
//     unwrapped.
//  6. Tokens, users, the API and the console.
//  7. The orgs whose customer managed key is revoked or lost are loaded.
//
// # Invariants
//
//   - Nothing is served before step 7 is done: [Server.Handler] exists only
//     on a Server that [Open] returned, and Open returns only after the
//     revoked orgs are loaded, so a revoked org is refused from the first
//     request on.
//   - Background work (the CMK probe and re-wrap jobs) runs only inside
//     [Server.Serve] or [Server.Start], and is stopped and waited for by
//     [Server.Close] before anything it uses is closed.
//   - Close releases everything in the reverse order of Open (background
//     work, usage counters flushed, keepers, store, data directory); it is
//     idempotent, and Open releases what it built when a step fails.
//   - This package never links the Azure emulator: what only development
//     and tests inject (an HTTP client that reaches the emulator, a clock,
//     a job-step observer) comes in through [Options].
package server
