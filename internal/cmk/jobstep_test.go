package cmk_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/jobs"
)

// Config.JobObserver sees every durable step of a re-wrap job, in order,
// with the job's kind, then the run's outcome.
func TestJobObserverSeesEveryStep(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")

	var mu sync.Mutex
	var steps []string
	cs, err := cmk.New(cmk.Config{Store: w.st, Keys: w.keys, Keepers: w.keepers, Clouds: []cmk.Cloud{w.cloud}, CallbackURL: callbackURL,
		JobObserver: func(ev jobs.Event) {
			mu.Lock()
			defer mu.Unlock()
			steps = append(steps, string(ev.Kind)+"/"+ev.Step+string(ev.Outcome))
		}})
	if err != nil {
		t.Fatal(err)
	}
	w.rotate() // a new version, tagged for the org
	if err := cs.Probe(ctx, "acme"); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if err := cs.RunPendingJobs(ctx); err != nil {
		t.Fatalf("RunPendingJobs: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"rotate/copied", "rotate/verified", "rotate/switched", "rotate/done"}; !slices.Equal(steps, want) {
		t.Errorf("JobObserver saw %q, want %q", steps, want)
	}
}
