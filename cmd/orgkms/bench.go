package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

// benchResult is the outcome of one load phase.
type benchResult struct {
	Target      string  `json:"target"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	FirstError  string  `json:"first_error,omitempty"`
	MBPerSecond float64 `json:"mb_per_second"`
}

type benchReport struct {
	Op          string        `json:"op"`
	Size        int           `json:"size"`
	Concurrency int           `json:"concurrency"`
	Duration    string        `json:"duration"`
	Results     []benchResult `json:"results"`
	Ratio       float64       `json:"ratio_to_baseline,omitempty"`
}

func benchCmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "load-test a running server (with an in-process baseline)",
		Long: "Load-tests a running orgkms (ORGKMS_ADDR, ORGKMS_TOKEN; the token needs the service\n" +
			"role, and operator to create the org if missing) and prints req/s and latency\n" +
			"percentiles. With --baseline it then runs the same load against an in-process\n" +
			"minimal net/http handler that only decodes the same JSON body, runs AES-256-GCM\n" +
			"Seal (encrypt) or Open (decrypt) and writes the JSON response, and prints\n" +
			"orgkms / baseline. Requests are bounded by --duration and go to ORGKMS_ADDR only.",
		Args: argNames(),
	}
	fs := cmd.Flags()
	op := fs.String("op", "encrypt", "operation: encrypt, decrypt, rewrap or datakey")
	size := fs.Int("size", 1024, "plaintext bytes per request")
	conc := fs.Int("concurrency", 64, "concurrent requests in flight")
	dur := fs.Duration("duration", 10*time.Second, "measured duration of each phase")
	warm := fs.Duration("warmup", time.Second, "unmeasured warm-up before each phase")
	org := fs.String("org", "bench", "org to use (created when missing)")
	key := fs.String("key", "default", "data key")
	baseline := fs.Bool("baseline", false, "also measure the in-process AES-256-GCM baseline")
	out := addFormat(cmd)
	cmd.RunE = func(*cobra.Command, []string) error {
		return runBench(env, benchOptions{op: *op, size: *size, conc: *conc, dur: *dur, warm: *warm, org: *org, key: *key, baseline: *baseline, out: out})
	}
	return cmd
}

// benchOptions are the flags of orgkms bench.
type benchOptions struct {
	op, org, key string
	size, conc   int
	dur, warm    time.Duration
	baseline     bool
	out          *format
}

func runBench(env *cliEnv, o benchOptions) error {
	op, size, conc, dur, warm, org, key, baseline := &o.op, &o.size, &o.conc, &o.dur, &o.warm, &o.org, &o.key, &o.baseline
	format, _ := o.out.get()
	quiet := format != "" // json or table: print only the report at the end
	switch *op {
	case "encrypt", "decrypt", "rewrap", "datakey":
	default:
		return usageError{"unknown --op " + *op, "use encrypt, decrypt, rewrap or datakey"}
	}
	if *size < 0 || *size > 4<<20 || *conc < 1 || *conc > 4096 || *dur <= 0 || *dur > time.Hour {
		return usageError{"--size must be 0..4194304, --concurrency 1..4096, --duration up to 1h", ""}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	ctx := env.ctx
	if _, err := c.GetOrg(ctx, *org); errors.Is(err, client.CodeNotFound) {
		if _, err := c.CreateOrg(ctx, *org, "orgkms bench"); err != nil {
			return withHint(err, "create the org first, or use a token with the operator role")
		}
	} else if err != nil {
		return err
	}
	plaintext := make([]byte, *size)
	rand.Read(plaintext)
	var body []byte
	switch *op {
	case "encrypt":
		body, _ = json.Marshal(client.EncryptRequest{Plaintext: plaintext})
	case "datakey":
		body, _ = json.Marshal(client.DataKeyRequest{Type: "wrapped"})
	default:
		ct, _, err := c.Encrypt(ctx, *org, *key, plaintext, nil)
		if err != nil {
			return err
		}
		body, _ = json.Marshal(client.DecryptRequest{Ciphertext: ct})
	}
	token := os.Getenv("ORGKMS_TOKEN")
	url := c.Addr() + "/v1/orgs/" + *org + "/keys/" + *key + "/" + *op
	hc := benchHTTPClient(*conc)
	rep := benchReport{Op: *op, Size: *size, Concurrency: *conc, Duration: dur.String()}
	if !quiet {
		fmt.Fprintf(env.stdout, "op=%s size=%d concurrency=%d duration=%s\n", *op, *size, *conc, *dur)
	}
	r := runLoad(ctx, hc, "orgkms", url, token, body, *conc, *warm, *dur, *size)
	rep.Results = append(rep.Results, r)
	if !quiet {
		printBench(env.stdout, r)
	}
	if *baseline {
		b, err := runBaseline(ctx, hc, *op, plaintext, *conc, *warm, *dur)
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, b)
		if b.RPS > 0 {
			rep.Ratio = r.RPS / b.RPS
		}
		if !quiet {
			printBench(env.stdout, b)
			fmt.Fprintf(env.stdout, "ratio orgkms/baseline: %.2f\n", rep.Ratio)
		}
	}
	switch format {
	case "json":
		return printJSON(env.stdout, rep)
	case "table":
		if err := printTable(env.stdout, rep); err != nil {
			return err
		}
	}
	if r.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed; first: %s", r.Errors, r.Requests, r.FirstError)
	}
	return nil
}

func printBench(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "%-9s %9.0f req/s  %7.1f MB/s  p50 %6.2fms  p90 %6.2fms  p99 %6.2fms  requests %d  errors %d\n",
		r.Target, r.RPS, r.MBPerSecond, r.P50Ms, r.P90Ms, r.P99Ms, r.Requests, r.Errors)
}

func benchHTTPClient(conc int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conc * 2
	tr.MaxIdleConnsPerHost = conc * 2
	tr.MaxConnsPerHost = 0
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// runLoad sends body to url from conc workers: warm-up, then measure for dur.
func runLoad(ctx context.Context, hc *http.Client, target, url, token string, body []byte, conc int, warm, dur time.Duration, size int) benchResult {
	var measuring atomic.Bool
	var requests, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, conc)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				start := time.Now()
				resp, err := hc.Do(req)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					if !ok && firstErr.Load() == nil {
						b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
						firstErr.Store(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b)))
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				d := time.Since(start)
				if !measuring.Load() || ctx.Err() != nil {
					continue
				}
				requests.Add(1)
				if !ok {
					errs.Add(1)
					if err != nil && firstErr.Load() == nil {
						firstErr.Store(err.Error())
					}
					continue
				}
				local = append(local, d)
			}
			lat[i] = local
		})
	}
	sleepCtx(ctx, warm)
	measuring.Store(true)
	start := time.Now()
	sleepCtx(ctx, dur)
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	n := requests.Load()
	r := benchResult{Target: target, Requests: n, Errors: errs.Load(), Seconds: elapsed.Seconds(),
		RPS: float64(n-errs.Load()) / elapsed.Seconds(), P50Ms: pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99)}
	r.MBPerSecond = r.RPS * float64(size) / 1e6
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// runBaseline serves a minimal AES-256-GCM JSON handler on loopback and
// loads it exactly like orgkms.
func runBaseline(ctx context.Context, hc *http.Client, op string, plaintext []byte, conc int, warm, dur time.Duration) (benchResult, error) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	seal := func(pt []byte) []byte {
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pt)+aead.Overhead())
		rand.Read(nonce)
		return aead.Seal(nonce, nonce, pt, nil)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Plaintext  []byte `json:"plaintext"`
			Ciphertext []byte `json:"ciphertext"`
			Type       string `json:"type"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var resp client.CryptoResponse
		switch op {
		case "encrypt":
			resp.Ciphertext = seal(req.Plaintext)
		case "datakey":
			dk := make([]byte, 32)
			rand.Read(dk)
			resp.Ciphertext = seal(dk)
		default: // decrypt, rewrap
			ns := aead.NonceSize()
			if len(req.Ciphertext) < ns {
				http.Error(w, "short", http.StatusBadRequest)
				return
			}
			pt, err := aead.Open(nil, req.Ciphertext[:ns], req.Ciphertext[ns:], nil)
			if err != nil {
				http.Error(w, "auth", http.StatusBadRequest)
				return
			}
			if op == "rewrap" {
				resp.Ciphertext = seal(pt)
			} else {
				resp.Plaintext = pt
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return benchResult{}, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	var body []byte
	switch op {
	case "encrypt":
		body, _ = json.Marshal(client.EncryptRequest{Plaintext: plaintext})
	case "datakey":
		body, _ = json.Marshal(client.DataKeyRequest{Type: "wrapped"})
	default:
		body, _ = json.Marshal(client.DecryptRequest{Ciphertext: seal(plaintext)})
	}
	return runLoad(ctx, hc, "baseline", "http://"+ln.Addr().String()+"/", "", body, conc, warm, dur, len(plaintext)), nil
}
