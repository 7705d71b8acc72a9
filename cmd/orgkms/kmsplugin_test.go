package main

import (
	"context"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	kmsapi "k8s.io/kms/apis/v2"
)

// TestKMSPluginCommand runs "orgkms kms-plugin" as main does, over a stale
// socket file: it replaces the socket (mode 0600), serves KMS v2 to the
// k8s.io/kms client (unhealthy here: no orgkms answers at --addr), and on
// SIGTERM stops cleanly, exit 0, removing the socket.
func TestKMSPluginCommand(t *testing.T) {
	dir, err := os.MkdirTemp("", "kms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "kms.sock")
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("okms_test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ORGKMS_ADDR", "")
	t.Setenv("ORGKMS_TOKEN", "")

	// As main: the context ends on SIGTERM (the test process survives it
	// while the notification is registered).
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"kms-plugin", "--listen", "unix://" + sock, "--org", "acme", "--addr", "http://127.0.0.1:1", "--token-file", tokenFile},
			strings.NewReader(""), &stdout, &stderr)
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(stdout.String(), "listening on") {
		select {
		case code := <-done:
			t.Fatalf("kms-plugin exited with %d before listening\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kms-plugin did not listen within a minute\nstderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, %v; want a socket with mode 0600", sock, fi, err)
	}
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithAuthority("localhost"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rctx, rcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer rcancel()
	st, err := kmsapi.NewKeyManagementServiceClient(conn).Status(rctx, &kmsapi.StatusRequest{})
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Version != "v2" || !strings.HasPrefix(st.Healthz, "orgkms unreachable") || st.KeyId == "" {
		t.Errorf("Status = %+v, want v2, healthz orgkms unreachable: ..., a key_id", st)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("kms-plugin exit code %d after its stop, want 0\nstderr: %s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("kms-plugin did not stop within a minute")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket after the stop: %v, want it removed", err)
	}
	if !strings.Contains(stdout.String(), "orgkms kms-plugin: stopped") {
		t.Errorf("stdout = %q, want the stop line", stdout.String())
	}
}
