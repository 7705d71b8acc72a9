//go:build !orgkms_release

package main

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// freePortPair returns a listener on a loopback port P whose P+1 was free a
// moment ago.
func freePortPair(t *testing.T) (net.Listener, int) {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		if p < 65535 {
			if next, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1)); err == nil {
				next.Close()
				return ln, p
			}
		}
		ln.Close()
	}
	t.Fatal("no loopback port P with P+1 free in 50 tries")
	return nil, 0
}

// The consent page listens on the server's port + 1 by default, on any
// free port with a line saying so when that one is taken, and exactly on
// the address asked for otherwise.
func TestConsentAddr(t *testing.T) {
	t.Run("server port + 1", func(t *testing.T) {
		srv, p := freePortPair(t)
		defer srv.Close()
		ln, note, err := listenConsent("", srv.Addr().String())
		if err != nil {
			t.Fatalf("listenConsent: %v", err)
		}
		defer ln.Close()
		if got := ln.Addr().(*net.TCPAddr).Port; got != p+1 || note != "" {
			t.Errorf("consent page on port %d (note %q), want %d and no note", got, note, p+1)
		}
	})
	t.Run("port + 1 taken", func(t *testing.T) {
		srv, p := freePortPair(t)
		defer srv.Close()
		// Taken by this test, or (if that fails) meanwhile by another
		// process: taken either way.
		if taken, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1)); err == nil {
			defer taken.Close()
		}
		ln, note, err := listenConsent("", srv.Addr().String())
		if err != nil {
			t.Fatalf("listenConsent: %v", err)
		}
		defer ln.Close()
		want := "consent page: 127.0.0.1:" + strconv.Itoa(p+1) + " is taken, using " + ln.Addr().String() + " instead"
		if got := ln.Addr().(*net.TCPAddr).Port; got == p+1 || !strings.HasPrefix(note, want) {
			t.Errorf("consent page on port %d, note %q; want another port and a note starting %q", got, note, want)
		}
	})
	t.Run("explicit address", func(t *testing.T) {
		ln, note, err := listenConsent("127.0.0.1:0", "127.0.0.1:8200")
		if err != nil {
			t.Fatalf("listenConsent: %v", err)
		}
		defer ln.Close()
		if note != "" {
			t.Errorf("note %q for an explicit address", note)
		}
		taken := ln.Addr().String()
		if _, _, err := listenConsent(taken, "127.0.0.1:8200"); err == nil || !strings.Contains(err.Error(), "consent page") {
			t.Errorf("listenConsent(%s), taken = %v; want an error naming the consent page", taken, err)
		}
	})
}

// make dev passes ADDR= as --addr and ARGS= as further flags.
func TestMakeDev(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Fatalf("make is needed (the README's make dev): %v", err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{nil, "go run ./cmd/orgkms dev"},
		{[]string{"ADDR=127.0.0.1:9000"}, "go run ./cmd/orgkms dev --addr 127.0.0.1:9000"},
		{[]string{"ADDR=127.0.0.1:9000", "ARGS=--no-emulator --probe-interval 5s"}, "go run ./cmd/orgkms dev --addr 127.0.0.1:9000 --no-emulator --probe-interval 5s"},
		{[]string{"ARGS=--data /tmp/d"}, "go run ./cmd/orgkms dev --data /tmp/d"},
	}
	for _, tc := range tests {
		cmd := exec.Command(mk, append([]string{"-s", "-n", "-C", "../..", "dev", "GO=go"}, tc.args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make -n dev %s: %v", strings.Join(tc.args, " "), err)
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != tc.want {
			t.Errorf("make -n dev %s runs %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}
