package jobs_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
)

// countingStore has jobs to hand out; it counts the claims.
type countingStore struct {
	claims atomic.Int64
	mu     sync.Mutex
	queue  []jobs.Job
}

func (s *countingStore) ClaimJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (jobs.Job, error) {
	s.claims.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return jobs.Job{}, &fault.Error{Kind: fault.NotFound, Reason: "no job"}
	}
	j := s.queue[0]
	s.queue = s.queue[1:]
	j.Owner, j.State, j.LeaseUntil = owner, jobs.Running, now.Add(lease)
	return j, nil
}

func (s *countingStore) UpdateJob(ctx context.Context, j jobs.Job) error                 { return nil }
func (s *countingStore) RenewJob(ctx context.Context, j jobs.Job, until time.Time) error { return nil }

type doneHandler struct{ ran chan int64 }

func (h doneHandler) Run(ctx context.Context, j *jobs.Job) error {
	j.State = jobs.Done
	h.ran <- j.ID
	return nil
}
func (h doneHandler) Fail(ctx context.Context, j jobs.Job, err error) error { return err }

// TestKickWakesWithoutSpinning: a Kick makes an idle worker claim at once,
// and a worker that finds a job passes the wake on, so queued jobs run
// without waiting for the poll; but idle workers that find nothing do not
// wake each other in a loop (which once made an idle node spin on claim
// transactions).
func TestKickWakesWithoutSpinning(t *testing.T) {
	st := &countingStore{}
	ran := make(chan int64, 10)
	r, err := jobs.New(jobs.Config{Store: st, Handler: doneHandler{ran}, NodeID: "n", Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	const workers = 4
	go func() { r.Run(ctx, workers); close(done) }()
	defer func() { stop(); <-done }()
	waitClaims := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for st.claims.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("claims = %d, want at least %d", st.claims.Load(), n)
			}
			time.Sleep(5 * time.Millisecond) // polling a condition
		}
	}
	waitClaims(workers) // each worker looked once at start

	st.mu.Lock()
	st.queue = []jobs.Job{{ID: 1, State: jobs.Pending}, {ID: 2, State: jobs.Pending}}
	st.mu.Unlock()
	r.Kick()
	for range 2 {
		select {
		case <-ran:
		case <-time.After(30 * time.Second):
			t.Fatal("a queued job did not run after Kick (the poll is an hour)")
		}
	}
	// An observation window: with idle workers waking each other, claims
	// would grow by thousands in it; here they stop.
	time.Sleep(200 * time.Millisecond)
	before := st.claims.Load()
	time.Sleep(200 * time.Millisecond)
	if after := st.claims.Load(); after != before {
		t.Errorf("idle workers kept claiming after the queue was empty: %d claims, then %d", before, after)
	}
}
