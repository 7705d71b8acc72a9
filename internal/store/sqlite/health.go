package sqlite

import (
	"context"
	"strconv"
	"time"
)

// healthEvery bounds how often [Store.Health] writes its probe: /readyz is
// unauthenticated, and its callers must not be able to queue writes.
const healthEvery = time.Second

// Health reports whether the database takes writes now. It commits a
// one-page write (the header's user_version, which orgkms does not
// otherwise use), so a full disk, a read-only file system or an I/O error
// shows here as Kind Unavailable with a reason naming the condition, as
// every write reports it (see classify). Like every write, the probe first
// checks the file under the store: a database file deleted under the
// running server is restored from the open database, with nothing lost; one
// replaced by another file is reported until the original is put back.
// A write that failed so keeps Health false, even if the probe's one page
// passes, until a write succeeds or 10 s pass without one. Health probes at
// most once a second and returns the last result between probes; it
// recovers by itself when the condition is gone.
func (s *Store) Health(ctx context.Context) error {
	const op = "check the database"
	if s.guard == nil {
		return classify(ctx, op, "database", s.w.PingContext(ctx))
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if !s.healthAt.IsZero() && time.Since(s.healthAt) < healthEvery {
		return s.healthErr
	}
	s.healthSeq = (s.healthSeq + 1) % (1 << 30)
	_, err := s.w.ExecContext(context.WithValue(ctx, probeKey{}, true), `PRAGMA user_version = `+strconv.Itoa(s.healthSeq))
	if err == nil {
		err = s.guard.recentFault()
	}
	err = classify(ctx, op, "database", err)
	if ctx.Err() != nil {
		return err // the caller gave up; not a result to keep
	}
	s.healthAt, s.healthErr = time.Now(), err
	return err
}
