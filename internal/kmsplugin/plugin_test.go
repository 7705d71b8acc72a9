package kmsplugin_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	kmsapi "k8s.io/kms/apis/v2"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/kmsplugin"
)

func seed(t *testing.T) []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// status calls Status and checks what kube-apiserver checks of every
// answer (version v2, a key_id of 1-1024 bytes).
func statusOf(t *testing.T, kms kmsapi.KeyManagementServiceClient) *kmsapi.StatusResponse {
	t.Helper()
	ctx, cancel := rpc(t)
	defer cancel()
	st, err := kms.Status(ctx, &kmsapi.StatusRequest{})
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Version != "v2" || st.KeyId == "" || len(st.KeyId) > 1024 {
		t.Fatalf("Status = %+v; want version v2 and a key_id of 1-1024 bytes", st)
	}
	return st
}

func healthy(t *testing.T, kms kmsapi.KeyManagementServiceClient) *kmsapi.StatusResponse {
	t.Helper()
	st := statusOf(t, kms)
	if st.Healthz != "ok" {
		t.Fatalf("Status healthz = %q, want ok", st.Healthz)
	}
	return st
}

// sealed is what the apiserver stores of an Encrypt: the ciphertext, key_id
// and annotations, and the seed they must decrypt to.
type sealed struct {
	seed []byte
	resp *kmsapi.EncryptResponse
}

// fqdn is k8s.io/apimachinery's IsFullyQualifiedDomainName, which the
// apiserver applies to annotation keys: at least two DNS-1123 labels.
var fqdn = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func encrypt(t *testing.T, kms kmsapi.KeyManagementServiceClient, uid string, wantKeyID string) sealed {
	t.Helper()
	ctx, cancel := rpc(t)
	defer cancel()
	s := seed(t)
	resp, err := kms.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: s, Uid: uid})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if len(resp.Ciphertext) == 0 || len(resp.Ciphertext) > 1024 {
		t.Errorf("Encrypt ciphertext is %d bytes; KMS v2 wants 1-1024", len(resp.Ciphertext))
	}
	if resp.KeyId != wantKeyID {
		t.Errorf("Encrypt key_id = %q, want Status's %q (else the apiserver discards the seed)", resp.KeyId, wantKeyID)
	}
	size := 0
	for k, v := range resp.Annotations {
		if len(k) > 253 || !fqdn.MatchString(k) {
			t.Errorf("annotation key %q is not a fully qualified domain name", k)
		}
		size += len(k) + len(v)
	}
	if size > 32<<10 {
		t.Errorf("annotations are %d bytes; KMS v2 allows 32 KiB", size)
	}
	return sealed{seed: s, resp: resp}
}

func decrypt(t *testing.T, kms kmsapi.KeyManagementServiceClient, uid string, s sealed) error {
	t.Helper()
	ctx, cancel := rpc(t)
	defer cancel()
	resp, err := kms.Decrypt(ctx, &kmsapi.DecryptRequest{Ciphertext: s.resp.Ciphertext, Uid: uid, KeyId: s.resp.KeyId, Annotations: s.resp.Annotations})
	if err != nil {
		return err
	}
	if !bytes.Equal(resp.Plaintext, s.seed) {
		t.Fatalf("Decrypt returned another seed")
	}
	return nil
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: code %v (%v), want %v", what, got, err, want)
	}
}

// requestLogged reports whether orgkms' request log has a line for route
// with request ID uid, by the plugin's token.
func requestLogged(logs string, uid, route string) bool {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l struct{ Msg, Request_ID, Route, Principal string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "request" && l.Request_ID == uid && l.Route == route && l.Principal == "kms-plugin" {
			return true
		}
	}
	return false
}

// TestRoundTripAndRotation: through the KMS v2 gRPC client on the plugin's
// socket, Status is healthy with a stable key_id, Encrypt agrees with it
// and Decrypt returns the seed; the request UIDs are the request IDs of the
// orgkms calls; a data key rotation changes key_id, and seeds encrypted
// before still decrypt.
func TestRoundTripAndRotation(t *testing.T) {
	o := startOrgkms(t, false)
	cl := o.org("acme")
	pl := startPlugin(t, kmsplugin.Config{Client: cl, Org: "acme", CallTimeout: 10 * time.Second, StatusTTL: time.Nanosecond})
	st := healthy(t, pl.kms)
	if !strings.HasPrefix(st.KeyId, "orgkms:default:v1:") {
		t.Errorf("key_id = %q, want orgkms:default:v1:DIGEST", st.KeyId)
	}
	if again := healthy(t, pl.kms); again.KeyId != st.KeyId {
		t.Fatalf("key_id changed without a rotation: %q, then %q", st.KeyId, again.KeyId)
	}
	// Another replica of the plugin (another apiserver's) agrees.
	replica := startPlugin(t, kmsplugin.Config{Client: cl, Org: "acme", CallTimeout: 10 * time.Second})
	if r := healthy(t, replica.kms); r.KeyId != st.KeyId {
		t.Errorf("a replica's key_id = %q, want %q", r.KeyId, st.KeyId)
	}

	const encUID, decUID = "3f1d2c0e-8b1a-4a8e-9a53-0c6a9b7e5d41", "9b2f3e1d-1c4d-4e8f-8a6b-2d7c5e4f3a10"
	s1 := encrypt(t, pl.kms, encUID, st.KeyId)
	if got := string(s1.resp.Annotations[kmsplugin.AnnotationKeyVersion]); got != "1" {
		t.Errorf("annotation %s = %q, want 1", kmsplugin.AnnotationKeyVersion, got)
	}
	if err := decrypt(t, pl.kms, decUID, s1); err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if err := decrypt(t, replica.kms, "", s1); err != nil {
		t.Fatalf("Decrypt through the replica: %v", err)
	}
	waitFor(t, "the UIDs in orgkms' request log", func() (bool, string) {
		logs := o.logs.String()
		return requestLogged(logs, encUID, "POST /v1/orgs/{org}/keys/{key}/encrypt") && requestLogged(logs, decUID, "POST /v1/orgs/{org}/keys/{key}/decrypt"), logs
	})

	if _, err := o.op.RotateKey(t.Context(), "acme", "default"); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	st2 := healthy(t, pl.kms)
	if st2.KeyId == st.KeyId || !strings.HasPrefix(st2.KeyId, "orgkms:default:v2:") {
		t.Fatalf("key_id after a rotation = %q (before %q), want a new orgkms:default:v2:DIGEST", st2.KeyId, st.KeyId)
	}
	s2 := encrypt(t, pl.kms, "", st2.KeyId)
	if got := string(s2.resp.Annotations[kmsplugin.AnnotationKeyVersion]); got != "2" {
		t.Errorf("annotation %s = %q, want 2", kmsplugin.AnnotationKeyVersion, got)
	}
	for i, s := range []sealed{s1, s2} {
		if err := decrypt(t, pl.kms, "", s); err != nil {
			t.Errorf("Decrypt seed %d after the rotation: %v", i+1, err)
		}
	}
	// The replica has Status cached (5s): its Encrypt sees the new version
	// and answers the new key_id all the same.
	encrypt(t, replica.kms, "", st2.KeyId)

	// A retired version: FailedPrecondition, with orgkms' code.
	if _, err := o.op.SetMinDecryptionVersion(t.Context(), "acme", "default", 2); err != nil {
		t.Fatalf("SetMinDecryptionVersion: %v", err)
	}
	err := decrypt(t, pl.kms, "", s1)
	wantCode(t, "Decrypt of a retired version", err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "key_version_retired") {
		t.Errorf("Decrypt of a retired version: %v, want orgkms' code key_version_retired in it", err)
	}
}

// TestInvalidCiphertexts: what orgkms refuses as invalid is InvalidArgument:
// garbage, a ciphertext of the same key made without the plugin's context,
// one of another org; an empty one is refused before orgkms.
func TestInvalidCiphertexts(t *testing.T) {
	o := startOrgkms(t, false)
	cl := o.org("acme")
	other := o.org("other")
	pl := startPlugin(t, kmsplugin.Config{Client: cl, Org: "acme", CallTimeout: 10 * time.Second})
	po := startPlugin(t, kmsplugin.Config{Client: other, Org: "other", CallTimeout: 10 * time.Second})
	st := healthy(t, pl.kms)
	s := encrypt(t, pl.kms, "", st.KeyId)
	native, _, err := cl.Encrypt(t.Context(), "acme", "default", s.seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		kms  kmsapi.KeyManagementServiceClient
		ct   []byte
		want codes.Code
	}{
		{"garbage", pl.kms, []byte("not a ciphertext"), codes.InvalidArgument},
		{"empty", pl.kms, nil, codes.InvalidArgument},
		{"without the plugin's context", pl.kms, native, codes.InvalidArgument},
		{"of another org", po.kms, s.resp.Ciphertext, codes.InvalidArgument},
		{"modified", pl.kms, append(bytes.Clone(s.resp.Ciphertext[:len(s.resp.Ciphertext)-1]), s.resp.Ciphertext[len(s.resp.Ciphertext)-1]^1), codes.InvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := decrypt(t, tt.kms, "", sealed{seed: s.seed, resp: &kmsapi.EncryptResponse{Ciphertext: tt.ct, KeyId: s.resp.KeyId}})
			wantCode(t, "Decrypt", err, tt.want)
		})
	}
	ctx, cancel := rpc(t)
	defer cancel()
	_, err = pl.kms.Encrypt(ctx, &kmsapi.EncryptRequest{})
	wantCode(t, "Encrypt of nothing", err, codes.InvalidArgument)
}

// TestRevocation: an org on its customer managed key (the Azure emulator).
// Enabling the key changes key_id; disabling it in the vault turns Status
// unhealthy with the reason, and Encrypt and Decrypt fail with
// FailedPrecondition; enabling it again makes the plugin healthy with the
// same key_id, and every seed decrypts. The customer's rotation of the key
// changes key_id again.
func TestRevocation(t *testing.T) {
	o := startOrgkms(t, true)
	cl := o.org("acme")
	pl := startPlugin(t, kmsplugin.Config{Client: cl, Org: "acme", CallTimeout: 20 * time.Second, StatusTTL: 100 * time.Millisecond})
	platform := healthy(t, pl.kms)
	s0 := encrypt(t, pl.kms, "", platform.KeyId)

	o.enableCMK("acme")
	var cmk *kmsapi.StatusResponse
	waitFor(t, "a new key_id on the customer managed key", func() (bool, string) {
		cmk = statusOf(t, pl.kms)
		return cmk.Healthz == "ok" && cmk.KeyId != platform.KeyId, fmt.Sprintf("%+v", cmk)
	})
	if !strings.HasPrefix(cmk.KeyId, "orgkms:default:v1:") {
		t.Errorf("key_id on the CMK = %q, want the same data key version (v1) under another digest", cmk.KeyId)
	}
	s1 := encrypt(t, pl.kms, "", cmk.KeyId)

	o.setKeyEnabled(false)
	var st *kmsapi.StatusResponse
	waitFor(t, "Status unhealthy after the key was disabled", func() (bool, string) {
		st = statusOf(t, pl.kms)
		return st.Healthz != "ok", fmt.Sprintf("%+v", st)
	})
	if !strings.Contains(st.Healthz, "revoked") && !strings.Contains(st.Healthz, "cmk_key_disabled") {
		t.Errorf("healthz = %q, want the reason (revoked, cmk_key_disabled)", st.Healthz)
	}
	if st.KeyId != cmk.KeyId {
		t.Errorf("key_id while revoked = %q, want the last one %q (no churn)", st.KeyId, cmk.KeyId)
	}
	ctx, cancel := rpc(t)
	defer cancel()
	_, err := pl.kms.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: seed(t), Uid: "revoked-encrypt"})
	wantCode(t, "Encrypt while revoked", err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "cmk_") {
		t.Errorf("Encrypt while revoked: %v, want orgkms' cmk_* code in it", err)
	}
	for i, s := range []sealed{s0, s1} {
		wantCode(t, fmt.Sprintf("Decrypt seed %d while revoked", i), decrypt(t, pl.kms, "", s), codes.FailedPrecondition)
	}

	o.setKeyEnabled(true)
	waitFor(t, "Status healthy after the key was enabled again", func() (bool, string) {
		st = statusOf(t, pl.kms)
		return st.Healthz == "ok", fmt.Sprintf("%+v", st)
	})
	if st.KeyId != cmk.KeyId {
		t.Errorf("key_id after re-enabling = %q, want %q (the wrapping did not change)", st.KeyId, cmk.KeyId)
	}
	for i, s := range []sealed{s0, s1} {
		if err := decrypt(t, pl.kms, "", s); err != nil {
			t.Errorf("Decrypt seed %d after re-enabling: %v", i, err)
		}
	}
	s2 := encrypt(t, pl.kms, "", cmk.KeyId)

	// The customer rotates their key: orgkms follows the new version
	// (tagged for the org), and key_id changes with the wrapping.
	if _, err := o.emu.RotateKey(azureemu.DemoVault, azureemu.DemoKey); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if _, err := o.emu.SetKeyTags(azureemu.DemoVault, azureemu.DemoKey, "", map[string]string{"orgkms-org": "acme"}); err != nil {
		t.Fatalf("SetKeyTags: %v", err)
	}
	waitFor(t, "a new key_id after the customer's key rotation", func() (bool, string) {
		st = statusOf(t, pl.kms)
		return st.Healthz == "ok" && st.KeyId != cmk.KeyId, fmt.Sprintf("%+v", st)
	})
	if st.KeyId == platform.KeyId {
		t.Errorf("key_id after the CMK rotation = the platform one %q", st.KeyId)
	}
	encrypt(t, pl.kms, "", st.KeyId)
	for i, s := range []sealed{s0, s1, s2} {
		if err := decrypt(t, pl.kms, "", s); err != nil {
			t.Errorf("Decrypt seed %d after the CMK rotation: %v", i, err)
		}
	}
}

// TestUnreachable: with no orgkms behind it, the plugin serves, Status is
// unhealthy with the reason, and Encrypt is Unavailable (the apiserver
// retries).
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cl, err := client.New(client.Config{Addr: "http://" + addr, Token: "okms_x", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	pl := startPlugin(t, kmsplugin.Config{Client: cl, Org: "acme"})
	st := statusOf(t, pl.kms)
	if !strings.HasPrefix(st.Healthz, "orgkms unreachable") {
		t.Errorf("healthz = %q, want orgkms unreachable: ...", st.Healthz)
	}
	ctx, cancel := rpc(t)
	defer cancel()
	_, err = pl.kms.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: seed(t)})
	wantCode(t, "Encrypt", err, codes.Unavailable)
}

// TestListen: a stale socket file is replaced, any other file refused; the
// socket is 0600; a stopped plugin leaves no socket behind; endpoints other
// than unix:///path are refused.
func TestListen(t *testing.T) {
	dir := socketDir(t)
	path := filepath.Join(dir, "kms.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // a crashed plugin's socket file
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stale socket file: %v", err)
	}
	cl, err := client.New(client.Config{Addr: "http://127.0.0.1:1", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := kmsplugin.New(kmsplugin.Config{Client: cl, Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := kmsplugin.Listen("unix://" + path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	statusOf(t, dialKMS(t, path))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket file after Serve stopped: %v, want none", err)
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"unix://" + file, "tcp://127.0.0.1:1", "unix:///@abstract", "unix://relative.sock", dir + "/kms.sock"} {
		if ln, err := kmsplugin.Listen(ep); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded, want an error", ep)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "x" {
		t.Errorf("the regular file was touched: %q, %v", b, err)
	}
}
