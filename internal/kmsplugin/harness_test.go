package kmsplugin_test

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	kmsapi "k8s.io/kms/apis/v2"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/kmsplugin"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/testwait"
)

// syncBuffer collects log output of concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// orgkms is a whole orgkms server (internal/server, as orgkms serve builds
// it: SQLite, a local platform key) serving HTTP on loopback.
type orgkms struct {
	t    testing.TB
	url  string
	srv  *server.Server
	logs *syncBuffer
	op   *client.Client // operator
	emu  *azureemu.Emulator
	demo azureemu.Demo
}

// startOrgkms starts orgkms; with cmk, customer managed keys on the
// built-in Azure emulator (demo tenant, vault and key), probed every second.
func startOrgkms(t testing.TB, cmk bool) *orgkms {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &orgkms{t: t, url: "http://" + ln.Addr().String(), logs: &syncBuffer{}}
	cfg := config.Config{DataDir: t.TempDir(), Addr: ln.Addr().String(), PublicURL: o.url, LogRequests: true}
	opts := server.Options{Logger: slog.New(slog.NewJSONHandler(o.logs, nil)), Migrate: true}
	if cmk {
		emu, err := azureemu.Open(t.Context(), azureemu.Config{})
		if err != nil {
			t.Fatalf("azureemu.Open: %v", err)
		}
		t.Cleanup(func() { emu.Close() })
		if err := emu.Start(); err != nil {
			t.Fatalf("emulator Start: %v", err)
		}
		o.emu = emu
		if o.demo, err = azureemu.SeedDemo(emu, []string{o.url + "/v1/cmk/callback"}); err != nil {
			t.Fatalf("SeedDemo: %v", err)
		}
		hc := emu.HTTPClient()
		hc.Timeout = 30 * time.Second
		opts.AzureHTTPClient = hc
		cfg.CMK = config.CMK{Cloud: "azure", ProbeInterval: config.Duration(time.Second),
			Azure: config.Azure{ClientID: o.demo.ClientID, ClientSecret: o.demo.Secret, AuthorityHost: emu.URL() + "/"}}
	}
	s, err := server.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	o.srv = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("orgkms Serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("orgkms Close: %v", err)
		}
	})
	o.op = o.client(o.token("operator", "", auth.RoleOperator))
	return o
}

func (o *orgkms) token(principal, org string, roles ...auth.Role) string {
	o.t.Helper()
	_, secret, err := o.srv.Tokens.Create(context.Background(), "test", auth.CreateTokenRequest{Principal: principal, OrgID: org, Roles: roles})
	if err != nil {
		o.t.Fatal(err)
	}
	return secret
}

func (o *orgkms) client(token string) *client.Client {
	o.t.Helper()
	c, err := client.New(client.Config{Addr: o.url, Token: token})
	if err != nil {
		o.t.Fatal(err)
	}
	return c
}

// org creates an org and returns a client with a service token of it, as
// the plugin of a cluster runs with.
func (o *orgkms) org(id string) *client.Client {
	o.t.Helper()
	if _, err := o.op.CreateOrg(o.t.Context(), id, ""); err != nil {
		o.t.Fatalf("CreateOrg %s: %v", id, err)
	}
	return o.client(o.token("kms-plugin", id, auth.RoleService))
}

var (
	csrfRE       = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	formActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// enableCMK puts org on the demo key of the emulator, as its security
// admin does: admin consent (the browser round trip), configure, enable,
// and waits until the org is active on it.
func (o *orgkms) enableCMK(org string) {
	t := o.t
	t.Helper()
	ctx := t.Context()
	sec := o.client(o.token("sec-"+org, org, auth.RoleAdmin, auth.RoleKeyAdmin))
	if _, err := o.emu.SetKeyTags(azureemu.DemoVault, azureemu.DemoKey, "", map[string]string{"orgkms-org": org}); err != nil {
		t.Fatalf("SetKeyTags: %v", err)
	}
	r, err := sec.CMKAuthorize(ctx, org, o.demo.TenantID)
	if err != nil {
		t.Fatalf("CMKAuthorize: %v", err)
	}
	browser := o.emu.HTTPClient()
	browser.Timeout = 30 * time.Second
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := browser.Get(r.ConsentURL)
	if err != nil {
		t.Fatalf("consent page: %v", err)
	}
	page := readBody(t, resp)
	tok, action := csrfRE.FindStringSubmatch(page), formActionRE.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || tok == nil || action == nil {
		t.Fatalf("consent page %s: %s\n%s", r.ConsentURL, resp.Status, page)
	}
	post, err := resp.Request.URL.Parse(html.UnescapeString(action[1]))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = browser.PostForm(post.String(), url.Values{"csrf_token": {html.UnescapeString(tok[1])}, "action": {"accept"}})
	if err != nil {
		t.Fatalf("accept consent: %v", err)
	}
	body := readBody(t, resp)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, o.url+"/") {
		t.Fatalf("accept consent: %s, Location %q\n%s", resp.Status, loc, body)
	}
	resp, err = http.Get(loc)
	if err != nil {
		t.Fatalf("consent callback: %v", err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("consent callback: %s\n%s", resp.Status, body)
	}
	if _, err := sec.CMKConfigure(ctx, org, client.CMKConfigureRequest{VaultURI: o.demo.VaultURI, KeyName: azureemu.DemoKey}); err != nil {
		t.Fatalf("CMKConfigure: %v", err)
	}
	if _, err := sec.CMKEnable(ctx, org); err != nil {
		t.Fatalf("CMKEnable: %v", err)
	}
	waitFor(t, "org "+org+" active on its customer managed key", func() (bool, string) {
		st, err := sec.CMKStatus(ctx, org)
		return err == nil && st.State == "active" && st.Job != nil && st.Job.State == "done", fmt.Sprintf("%+v, %v", st, err)
	})
}

// setKeyEnabled enables or disables the demo key's current version in the
// customer's vault.
func (o *orgkms) setKeyEnabled(enabled bool) {
	o.t.Helper()
	if _, err := o.emu.UpdateKey(azureemu.DemoVault, azureemu.DemoKey, "", &enabled, nil, nil); err != nil {
		o.t.Fatalf("UpdateKey enabled=%v: %v", enabled, err)
	}
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", resp.Request.URL, err)
	}
	return string(b)
}

// waitFor polls cond until it holds, failing after a generous timeout with
// cond's last description.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	testwait.For(t, what, 2*time.Minute, cond)
}

// socketDir is a short directory for unix sockets (their paths are limited
// to about 100 bytes, shorter than some t.TempDir paths).
func socketDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "kms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// plugin is a running plugin and a KMS v2 client connected to its socket.
type plugin struct {
	p      *kmsplugin.Plugin
	socket string
	kms    kmsapi.KeyManagementServiceClient
	stop   func() error // stops Serve and returns its error
}

// startPlugin serves a plugin of org's key on a unix socket and dials it
// the way kube-apiserver does (k8s.io/apiserver kmsv2 grpc_service.go:
// authority localhost, insecure, WaitForReady, a unix dialer).
func startPlugin(t testing.TB, cfg kmsplugin.Config) *plugin {
	t.Helper()
	p, err := kmsplugin.New(cfg)
	if err != nil {
		t.Fatalf("kmsplugin.New: %v", err)
	}
	socket := filepath.Join(socketDir(t), "kms.sock")
	ln, err := kmsplugin.Listen("unix://" + socket)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("plugin Serve: %v", err)
		}
	})
	return &plugin{p: p, socket: socket, kms: dialKMS(t, socket), stop: stop}
}

func dialKMS(t testing.TB, socket string) kmsapi.KeyManagementServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix:"+socket,
		grpc.WithAuthority("localhost"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return kmsapi.NewKeyManagementServiceClient(conn)
}

// rpc is the context of one call of the apiserver (whose default
// kms.timeout is 3s; generous here, on a shared test machine).
func rpc(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), 10*time.Second)
}
