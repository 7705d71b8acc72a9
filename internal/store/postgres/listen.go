package postgres

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// GenerationChannel is the channel the org_generations trigger notifies,
// with the payload "GENERATION ORG_ID", when a transaction that raised an
// org's generation commits.
const GenerationChannel = "orgkms_generation"

// ListenGenerations listens on [GenerationChannel] over a dedicated
// connection (not one of the pool's) and calls fn for every notification,
// on its own goroutine, until ctx is cancelled or the connection fails; it
// then returns the error (Unavailable; ctx's error when cancelled).
// connected is called once the LISTEN is in place: notifications sent
// before then are lost, so the caller checks every generation there.
// Notifications are hints: channels are database-wide, so another schema's
// orgs may show up too.
func (s *Store) ListenGenerations(ctx context.Context, connected func(), fn func(orgID string, generation int64)) error {
	const op = "listen for generations"
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return s.redact(classify(ctx, op, "database", err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+GenerationChannel); err != nil {
		return classify(ctx, op, "database", err)
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return classify(ctx, op, "database", err)
		}
		gen, org, ok := strings.Cut(n.Payload, " ")
		g, perr := strconv.ParseInt(gen, 10, 64)
		if !ok || perr != nil {
			continue
		}
		fn(org, g)
	}
}
