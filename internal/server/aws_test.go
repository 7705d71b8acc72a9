package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/metrics"
)

// TestProvidersAWS: the awskms driver is registered only with
// cmk.aws.enabled, and applies cmk.aws.allowed_regions to refs.
func TestProvidersAWS(t *testing.T) {
	zero := func() float64 { return 0 }
	log := slog.New(slog.DiscardHandler)
	r, _, err := providers(config.Config{}, Options{}, log, metrics.New(zero, zero, zero))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(r.Schemes(), "awskms") {
		t.Fatalf("awskms registered by default: %v", r.Schemes())
	}
	cfg := config.Config{CMK: config.CMK{AWS: config.AWS{Enabled: true, AllowedRegions: []string{"eu-west-2"}, CredentialsSource: "env"}}}
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "s"}
	r, _, err = providers(cfg, Options{Getenv: func(k string) string { return env[k] }}, log, metrics.New(zero, zero, zero))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Schemes(), "awskms") {
		t.Fatalf("awskms not registered with cmk.aws.enabled: %v", r.Schemes())
	}
	arn := "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	if _, err := r.ParseRef("awskms://" + arn); err != nil {
		t.Fatalf("ParseRef of a key in an allowed Region: %v", err)
	}
	if _, err := r.ParseRef("awskms://" + strings.Replace(arn, "eu-west-2", "us-east-1", 1)); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("ParseRef of a key outside the allowed Regions: %v", err)
	}
	_, _, err = providers(cfg, Options{Getenv: func(string) string { return "" }}, log, metrics.New(zero, zero, zero))
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("credentials_source env without the variables: %v", err)
	}
}

// recordingGate admits every call and records the vaults and answers.
type recordingGate struct {
	mu        sync.Mutex
	vaults    []masterkey.Vault
	throttled int
}

func (g *recordingGate) Admit(_ context.Context, v masterkey.Vault) (func(bool, time.Duration), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.vaults = append(g.vaults, v)
	return func(throttled bool, _ time.Duration) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if throttled {
			g.throttled++
		}
	}, nil
}

// TestProvidersAWSDrawFromTheBudget: the composition root gives the vault
// budget to the awskms driver: each attempt of a KMS call (here, every
// one throttled) is admitted under the key's account and Region, and the
// keeper names that vault.
func TestProvidersAWSDrawFromTheBudget(t *testing.T) {
	kmsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
	}))
	defer kmsSrv.Close()
	zero := func() float64 { return 0 }
	gate := &recordingGate{}
	cfg := config.Config{CMK: config.CMK{AWS: config.AWS{Enabled: true, CredentialsSource: "env", KMSEndpoint: kmsSrv.URL, MaxAttempts: 2}}}
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "s"}
	r, _, err := providers(cfg, Options{Getenv: func(k string) string { return env[k] }, gate: gate}, slog.New(slog.DiscardHandler), metrics.New(zero, zero, zero))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := r.ParseRef("awskms://arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
	if err != nil {
		t.Fatal(err)
	}
	k, err := r.Keeper(ref)
	if err != nil {
		t.Fatal(err)
	}
	want := masterkey.Vault{Cloud: "aws", Name: "111122223333/eu-west-2"}
	if v, ok := k.Vault(ref); !ok || v != want {
		t.Fatalf("keeper.Vault = %+v, %v; want %+v", v, ok, want)
	}
	if _, err := k.Describe(t.Context(), ref); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("Describe of a throttling account: %v, want unavailable", err)
	}
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if len(gate.vaults) != 2 || gate.throttled != 2 || gate.vaults[0] != want || gate.vaults[1] != want {
		t.Fatalf("the gate admitted %+v and heard %d throttled answers; want 2 attempts on %+v, both throttled", gate.vaults, gate.throttled, want)
	}
}
