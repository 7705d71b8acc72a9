package azureemu

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RSA key generation costs ~100 ms per 2048-bit key (more under -race), so
// tests draw from a small pool of pre-generated keys, round robin. Keys of
// consecutive versions therefore differ.
var (
	poolOnce sync.Once
	pool     []*rsa.PrivateKey
	poolNext atomic.Uint64
)

func pooledRSA(t testing.TB) func(bits int) (*rsa.PrivateKey, error) {
	poolOnce.Do(func() {
		var wg sync.WaitGroup
		pool = make([]*rsa.PrivateKey, 4)
		for i := range pool {
			wg.Go(func() {
				k, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					panic(err)
				}
				pool[i] = k
			})
		}
		wg.Wait()
	})
	return func(bits int) (*rsa.PrivateKey, error) {
		if bits != 2048 {
			return rsa.GenerateKey(rand.Reader, bits)
		}
		return pool[poolNext.Add(1)%uint64(len(pool))], nil
	}
}

// testClock is a settable clock.
type testClock struct{ ns atomic.Int64 }

func newClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// startEmu opens and starts an emulator that uses the RSA pool.
func startEmu(t *testing.T, cfg Config) *Emulator {
	t.Helper()
	e, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	e.rsaKeyGen = pooledRSA(t)
	if err := e.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// world is a typical CMK set-up: the platform app registered in its home
// tenant, consented in the customer tenant that owns vault "demo".
type world struct {
	e        *Emulator
	home     Tenant
	customer Tenant
	app      App
	sp       ServicePrincipal
	vault    Vault
	key      KeyInfo
}

func newWorld(t *testing.T, e *Emulator) *world {
	t.Helper()
	w := &world{e: e}
	w.home = must[Tenant](t)(e.CreateTenant("platform"))
	w.customer = must[Tenant](t)(e.CreateTenant("contoso"))
	w.app = must[App](t)(e.RegisterApp(w.home.ID, AppRegistration{Name: "orgkms <test>", RedirectURIs: []string{"http://127.0.0.1:*/cmk/callback", "https://orgkms.example.com/cb"}}))
	w.sp = must[ServicePrincipal](t)(e.GrantConsent(w.customer.ID, w.app.ClientID))
	w.vault = must[Vault](t)(e.CreateVault(w.customer.ID, "demo", VaultOptions{}))
	w.key = must[KeyInfo](t)(e.CreateKey("demo", "k1", KeyOptions{}))
	if err := e.SetPolicy("demo", w.sp.ObjectID, []string{"get", "list", "wrapkey", "UNWRAPKEY", "encrypt", "decrypt", "update", "create", "delete", "recover", "purge", "rotate"}); err != nil {
		t.Fatal(err)
	}
	return w
}

// rawResp is a decoded HTTP response.
type rawResp struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return m
}

// errCodes returns error.code and error.innererror.code.
func (r rawResp) errCodes(t *testing.T) (code, inner, msg string) {
	t.Helper()
	m := r.json(t)
	e, _ := m["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error envelope in %s", r.body)
	}
	code, _ = e["code"].(string)
	msg, _ = e["message"].(string)
	if ie, ok := e["innererror"].(map[string]any); ok {
		inner, _ = ie["code"].(string)
	}
	return code, inner, msg
}

func send(t *testing.T, c *http.Client, method, url, token string, body any) rawResp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResp{status: resp.StatusCode, header: resp.Header, body: b}
}

// token gets a client-credentials token over HTTP; it fails the test on error.
func token(t *testing.T, e *Emulator, tenant, clientID, secret, scope string) string {
	t.Helper()
	r := tokenResp(t, e, tenant, clientID, secret, scope)
	if r.status != http.StatusOK {
		t.Fatalf("token: status %d %s", r.status, r.body)
	}
	tok, _ := r.json(t)["access_token"].(string)
	return tok
}

func tokenResp(t *testing.T, e *Emulator, tenant, clientID, secret, scope string) rawResp {
	t.Helper()
	form := "grant_type=client_credentials&client_id=" + clientID + "&client_secret=" + secret + "&scope=" + strings.ReplaceAll(scope, " ", "+")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.URL()+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResp{status: resp.StatusCode, header: resp.Header, body: b}
}
