package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11/softhsmtest"
)

// TestServePKCS11 runs "orgkms serve" with master_key a SoftHSM2 key: it
// starts, an org is created and encrypts; after a restart everything reads
// back; after a new key version in the HSM, old blobs still unwrap with
// their version and a new org is wrapped by the new one.
func TestServePKCS11(t *testing.T) {
	dir := t.TempDir()
	tok := softhsmtest.Init(t, filepath.Join(dir, "hsm"), "orgkms", "4321")
	t.Setenv("SOFTHSM2_CONF", tok.Conf) // for the server and orgkms hsm
	const uri = "pkcs11:token=orgkms;object=platform-kek"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &crashCase{t: t, bin: buildOrgkms(t, t.TempDir()), org: "acme", dir: dir, cfg: filepath.Join(dir, "orgkms.json"), url: "http://" + addr,
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}}
	cfg := map[string]any{
		"addr": addr, "data_dir": filepath.Join(dir, "data"), "public_url": c.url, "log_format": "text",
		"master_key": uri,
		"pkcs11":     map[string]any{"module_path": tok.Module, "pin_source": "file:" + tok.PINFile, "pool_size": 2},
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(c.cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// orgkms hsm new-version generates the key inside the HSM.
	hsm := func(want string, args ...string) {
		t.Helper()
		cmd := exec.Command(c.bin, append(args, "--config", c.cfg, "--format", "json")...)
		cmd.Env = crashEnv()
		out, err := cmd.CombinedOutput()
		var k struct {
			Key, Version string
			Enabled      bool
		}
		if err != nil || json.Unmarshal(out, &k) != nil || k.Version != want || !k.Enabled || k.Key != "pkcs11://token=orgkms;object=platform-kek#"+want {
			t.Fatalf("orgkms %s: %v\n%s\nwant version %s, enabled", strings.Join(args, " "), err, out, want)
		}
		if strings.Contains(string(out), tok.PIN) {
			t.Fatalf("orgkms %s printed the PIN", strings.Join(args, " "))
		}
	}
	hsm("1", "hsm", "new-version")
	hsm("1", "hsm", "status")
	c.start("")
	if _, err := os.Stat(filepath.Join(dir, "data", "master.key")); err == nil {
		t.Fatal("orgkms made a local master key although master_key is a pkcs11: URI")
	}
	boot, err := os.ReadFile(filepath.Join(dir, "data", "bootstrap-token"))
	if err != nil {
		t.Fatal(err)
	}
	op := c.client(strings.TrimSpace(string(boot)))
	ctx := t.Context()
	svcFor := func(org string) *client.Client {
		if _, err := op.CreateOrg(ctx, org, org); err != nil {
			t.Fatalf("CreateOrg %s: %v", org, err)
		}
		svc, err := op.CreateToken(ctx, client.CreateTokenRequest{Principal: "svc", Org: org, Roles: []string{"service"}})
		if err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		return c.client(svc.Secret)
	}
	svc := svcFor("acme")
	pt := []byte("wrapped in the HSM")
	ct, _, err := svc.Encrypt(ctx, "acme", "default", pt, nil)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	want := wrapping{Provider: "pkcs11", KeyID: "token=orgkms;object=platform-kek", Version: "1", State: "active"}
	if ws := c.wrappings(); len(ws) != 1 || ws[0] != want {
		t.Fatalf("root key wrappings:\n%s\nwant one: %v", wrappingList(ws), want)
	}
	c.stop()

	// A new version in the HSM while orgkms is down; after the restart the
	// old org still decrypts (its blob names version 1) and a new org is
	// wrapped by version 2, the current one.
	hsm("2", "hsm", "new-version")
	hsm("2", "hsm", "status")
	c.start("")
	got, err := svc.Decrypt(ctx, "acme", "default", ct, nil)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Decrypt after the restart = %q, %v", got, err)
	}
	svcFor("globex")
	c.org = "globex"
	want.Version = "2"
	if ws := c.wrappings(); len(ws) != 1 || ws[0] != want {
		t.Fatalf("root key wrappings of a new org after the rotation:\n%s\nwant one: %v", wrappingList(ws), want)
	}
	c.stop()
}
