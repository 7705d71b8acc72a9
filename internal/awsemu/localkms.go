package awsemu

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// LocalKMSVersion is the pinned local-kms the tests run (make local-kms
// installs it).
const LocalKMSVersion = "v0.0.0-20260228092603-2a5e92d09ab6"

// InstallHint says how to install local-kms.
const InstallHint = "install it with: make local-kms (go install github.com/nsmithuk/local-kms@" + LocalKMSVersion + "), or set ORGKMS_LOCAL_KMS to its path"

// Account and Region of the local-kms the tests run: its key ARNs are
// arn:aws:kms:eu-west-2:111122223333:key/ID.
const (
	Account = "111122223333"
	Region  = "eu-west-2"
)

const (
	netnsEnv = "ORGKMS_AWSEMU_NETNS"
	urlEnv   = "ORGKMS_AWSEMU_LOCAL_KMS_URL"
	// localKMSPort is the port of local-kms inside the private network
	// namespace, which holds nothing else.
	localKMSPort = "4599"
)

// localKMSPath finds the local-kms binary: $ORGKMS_LOCAL_KMS, then PATH,
// then $GOBIN or $GOPATH/bin (where go install puts it).
func localKMSPath() (string, error) {
	if p := os.Getenv("ORGKMS_LOCAL_KMS"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("local-kms"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "local-kms")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("local-kms is not installed: " + InstallHint)
}

// Main is the TestMain of packages testing against local-kms. Outside a
// private network namespace it re-runs the test binary in a new one
// (unshare -n; as an unprivileged user with -r too) and exits with its
// status. Inside, it brings loopback up, checks that loopback is the only
// interface, starts local-kms on it and runs the tests. A missing
// component fails the run with how to install it: the tests never skip.
func Main(m *testing.M) {
	if os.Getenv(netnsEnv) == "" {
		os.Exit(reexec())
	}
	os.Exit(runInside(m))
}

func reexec() int {
	args := []string{"--net"}
	if os.Geteuid() != 0 {
		args = append(args, "--map-root-user")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the AWS KMS tests run local-kms in a private network namespace and need unshare (Debian package util-linux)")
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: cannot find the test binary:", err)
		return 1
	}
	cmd := exec.Command(unshare, append(append(args, "--", self), os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "FAIL: could not enter a private network namespace (unshare --net, as root, or with user namespaces enabled):", err)
		return 1
	}
	return 0
}

func runInside(m *testing.M) int {
	u, stop, err := enterAndStart()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer stop()
	os.Setenv(urlEnv, u)
	return m.Run()
}

// enterAndStart brings loopback up in the private network namespace the
// process runs in, checks that it is the only interface, and starts
// local-kms on it; it returns local-kms' URL and how to stop it.
func enterAndStart() (string, func(), error) {
	if err := loopbackUp(); err != nil {
		return "", nil, fmt.Errorf("bring loopback up in the private network namespace: %w", err)
	}
	if err := onlyLoopback(); err != nil {
		return "", nil, err
	}
	bin, err := localKMSPath()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "localkms")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+localKMSPort, "KMS_ACCOUNT_ID="+Account, "KMS_REGION="+Region,
		"KMS_DATA_PATH="+filepath.Join(dir, "data"), "KMS_SEED_PATH="+filepath.Join(dir, "no-seed.yaml"))
	logf, err := os.Create(filepath.Join(dir, "local-kms.log"))
	if err == nil {
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start local-kms: %w (%s)", err, InstallHint)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }
	addr := net.JoinHostPort("127.0.0.1", localKMSPort)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return "http://" + addr, stop, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "local-kms.log"))
			stop()
			return "", nil, fmt.Errorf("local-kms did not listen on %s within 60s:\n%s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Isolated runs the calling top-level test alone in a private network
// namespace with local-kms on loopback, for a package whose other tests
// must stay in the host's network (they reach PostgreSQL there), so it
// cannot use [Main]. Outside such a namespace it re-runs the test binary
// with only this test (-test.run) in a new one, logs the run's output,
// fails t when the run fails or did not pass the test, and returns false:
// the caller returns at once. Inside, it starts local-kms for the test
// (stopped at its end; [LocalKMSURL] finds it) and returns true. Like
// Main it fails, never skips, when a component is missing.
func Isolated(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) != "" {
		if os.Getenv(urlEnv) != "" {
			return true // Main started it
		}
		u, stop, err := enterAndStart()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		t.Setenv(urlEnv, u)
		return true
	}
	if strings.Contains(t.Name(), "/") {
		t.Fatal("awsemu.Isolated runs a whole top-level test: call it from the test, not from a subtest")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("the AWS KMS tests run local-kms in a private network namespace and need unshare (Debian package util-linux)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--net"}
	if os.Geteuid() != 0 {
		args = append(args, "--map-root-user")
	}
	args = append(args, "--", self, "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("the test in a private network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the test failed in its private network namespace (unshare --net, as root or with user namespaces enabled): %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("the run in the private network namespace did not pass %s", t.Name())
	}
	return false
}

// onlyLoopback checks the network namespace has no interface but lo, so
// local-kms (which listens on every interface) is reachable from nowhere
// else.
func onlyLoopback() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, i := range ifs {
		if i.Name != "lo" {
			return fmt.Errorf("refusing to start local-kms: the network namespace has interface %s besides lo", i.Name)
		}
	}
	return nil
}

// LocalKMSURL is the base URL of the local-kms [Main] started; it fails t
// when Main did not run.
func LocalKMSURL(t testing.TB) string {
	u := os.Getenv(urlEnv)
	if u == "" || os.Getenv(netnsEnv) == "" {
		t.Fatal("local-kms is not running: call awsemu.Main(m) from TestMain")
	}
	return u
}
