// Package softhsmtest gives each test its own SoftHSM2 token: a private
// token directory and SOFTHSM2_CONF in t.TempDir(), a token initialised with
// softhsm2-util, and a PIN file. Tests that use it fail (never skip) when
// SoftHSM2 is not installed, saying how to install it.
//
// SoftHSM2 reads SOFTHSM2_CONF when the module is initialised
// (C_Initialize), so a test's providers must all be closed before the next
// test makes its token (the driver finalizes the module when the last
// provider using it closes). Tests using this package cannot run in
// parallel: New sets SOFTHSM2_CONF with t.Setenv.
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ModuleEnv names an environment variable that overrides the module path.
const ModuleEnv = "ORGKMS_TEST_SOFTHSM2_MODULE"

// DebianModule is where Debian's libsofthsm2 package installs the module.
const DebianModule = "/usr/lib/softhsm/libsofthsm2.so"

const install = "SoftHSM2 is needed for the PKCS#11 tests: apt-get install -y softhsm2"

// Token is a SoftHSM2 token made for one test.
type Token struct {
	Label   string
	PIN     string // the user PIN
	SOPIN   string
	PINFile string // holds PIN, mode 0600
	Module  string // path of the PKCS#11 module
	Conf    string // the SOFTHSM2_CONF of this token
	Dir     string // the token directory
}

// Module returns the SoftHSM2 module path, failing t when it is missing.
func Module(t testing.TB) string {
	t.Helper()
	m := os.Getenv(ModuleEnv)
	if m == "" {
		m = DebianModule
	}
	if _, err := os.Stat(m); err != nil {
		t.Fatalf("%s (no module at %s: %v; %s overrides the path)", install, m, err, ModuleEnv)
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Fatalf("%s (softhsm2-util is not on PATH)", install)
	}
	return m
}

// New makes a token labelled label with user PIN pin in a private
// directory, and points SOFTHSM2_CONF at it for the rest of the test.
func New(t testing.TB, label, pin string) *Token {
	t.Helper()
	tok := Init(t, t.TempDir(), label, pin)
	t.Setenv("SOFTHSM2_CONF", tok.Conf)
	return tok
}

// Init makes the SoftHSM2 configuration and token directory under dir and
// a token in it, without touching this process's environment: a test that
// runs orgkms in another process passes SOFTHSM2_CONF=tok.Conf to it.
func Init(t testing.TB, dir, label, pin string) *Token {
	t.Helper()
	mod := Module(t)
	tok := &Token{Label: label, PIN: pin, SOPIN: pin + "-so", Module: mod,
		Dir: filepath.Join(dir, "tokens"), Conf: filepath.Join(dir, "softhsm2.conf"), PINFile: filepath.Join(dir, "hsm.pin")}
	if err := os.MkdirAll(tok.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nslots.mechanisms = ALL\nlibrary.reset_on_fork = false\n", tok.Dir)
	if err := os.WriteFile(tok.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tok.PINFile, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok.AddToken(t, label, pin)
	return tok
}

// AddToken initialises one more token in the same directory.
func (tok *Token) AddToken(t testing.TB, label, pin string) {
	t.Helper()
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", tok.SOPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+tok.Conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token --label %s: %v\n%s", label, err, strings.ReplaceAll(string(out), pin, "<pin>"))
	}
}

// URI returns the pkcs11: URI of the key labelled object on this token, with
// its module path and PIN file.
func (tok *Token) URI(object string) string {
	return "pkcs11:token=" + tok.Label + ";object=" + object + "?module-path=" + tok.Module + "&pin-source=file:" + tok.PINFile
}
