package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/testwait"
)

// Bounds of the cluster tests' waits, which all poll a condition. Like the
// crash tests' (see crashReadyTimeout), they only fail a stuck test with a
// message: nothing asserts how long a step took; the tests log the
// figures.
const (
	clusterTimeout = 3 * time.Minute
	clusterPoll    = 50 * time.Millisecond
)

// clusterNode is one "orgkms serve" process of a cluster: its own data
// directory (and so its own node ID), its own port, the cluster's database
// and platform master key.
type clusterNode struct {
	name   string // node1, node2, ... (test output)
	dir    string // DATA_DIR
	cfg    string // config file
	addr   string // 127.0.0.1:PORT, the same across restarts
	url    string // http://ADDR
	id     string // the node ID (DATA_DIR/node-id), once started
	proc   *orgkmsProc
	starts int
	logs   []*syncBuffer // the output of every start
}

// cluster is a set of orgkms nodes on one database.
type cluster struct {
	t     *testing.T
	bin   string
	http  *http.Client
	nodes []*clusterNode
}

// newCluster writes the configs of n nodes on database dbURL. Every node
// has the same platform master key (one file, as an operator would
// distribute one key to every node) and the settings of base (e.g. cmk),
// and its own address and data directory. Nothing is started.
func newCluster(t *testing.T, bin, dbURL string, n int, base map[string]any) *cluster {
	t.Helper()
	root := t.TempDir()
	masterKey := masterkey.Ref{Provider: "local", ID: filepath.Join(root, "master.key")}.String()
	c := &cluster{t: t, bin: bin,
		// No keep-alive: a node behind an address may be killed and
		// restarted.
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}}
	for i := range n {
		node := &clusterNode{name: fmt.Sprintf("node%d", i+1), dir: filepath.Join(root, fmt.Sprintf("node%d", i+1))}
		node.cfg = filepath.Join(node.dir, "orgkms.json")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		node.addr = ln.Addr().String()
		ln.Close()
		node.url = "http://" + node.addr
		cfg := map[string]any{}
		for k, v := range base {
			cfg[k] = v
		}
		cfg["addr"], cfg["data_dir"], cfg["public_url"] = node.addr, filepath.Join(node.dir, "data"), node.url
		cfg["database"], cfg["master_key"], cfg["log_format"] = dbURL, masterKey, "text"
		b, err := json.MarshalIndent(cfg, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(node.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(node.cfg, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, node)
	}
	return c
}

// migrate runs "orgkms migrate" once for the cluster, as the operator does
// before starting the nodes (they run without --migrate).
func (c *cluster) migrate() {
	c.t.Helper()
	cmd := exec.Command(c.bin, "migrate", "--config", c.nodes[0].cfg)
	cmd.Env = crashEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.HasSuffix(out, []byte(" migrated\n")) {
		c.t.Fatalf("orgkms migrate: %v\n%s", err, out)
	}
}

// start starts the nodes at once and waits until each answers /readyz,
// then reads its node ID.
func (c *cluster) start(nodes ...*clusterNode) {
	t := c.t
	t.Helper()
	for _, n := range nodes {
		if n.proc != nil {
			t.Fatalf("start %s: it is running", n.name)
		}
		n.starts++
		cmd := exec.Command(c.bin, "serve", "--config", n.cfg)
		cmd.Env = crashEnv()
		p := &orgkmsProc{started: time.Now(), cmd: cmd, out: new(syncBuffer), done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = p.out, p.out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", n.name, err)
		}
		go func() {
			cmd.Wait()
			close(p.done)
		}()
		name, starts := n.name, n.starts
		t.Cleanup(func() {
			select {
			case <-p.done:
			default:
				cmd.Process.Kill()
				<-p.done
			}
			if t.Failed() {
				t.Logf("output of %s (start #%d):\n%s", name, starts, p.out)
			}
		})
		n.proc = p
		n.logs = append(n.logs, p.out)
	}
	for _, n := range nodes {
		deadline := time.Now().Add(clusterTimeout)
		for {
			ready, why := c.ready(n)
			if ready {
				break
			}
			select {
			case <-n.proc.done:
				t.Fatalf("%s exited before it was ready (%v); its output:\n%s", n.name, n.proc.cmd.ProcessState, n.proc.out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not ready within %v (last: %s); its output:\n%s", n.name, clusterTimeout, why, n.proc.out)
			}
			time.Sleep(clusterPoll)
		}
		b, err := os.ReadFile(filepath.Join(n.dir, "data", "node-id"))
		if err != nil {
			t.Fatalf("node ID of %s: %v", n.name, err)
		}
		id := strings.TrimSpace(string(b))
		if n.id != "" && n.id != id {
			t.Errorf("%s restarted with node ID %s, want its ID %s", n.name, id, n.id)
		}
		n.id = id
	}
}

// ready reports whether n's /readyz answers 200, and else what it answered.
func (c *cluster) ready(n *clusterNode) (bool, string) {
	resp, err := c.http.Get(n.url + "/readyz")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK, resp.Status + " " + strings.TrimSpace(b.String())
}

// kill kills n with SIGKILL, as a crash of its machine would.
func (c *cluster) kill(n *clusterNode) {
	c.t.Helper()
	if err := n.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", n.name, err)
	}
	select {
	case <-n.proc.done:
	case <-time.After(clusterTimeout):
		c.t.Fatalf("%s still runs %v after SIGKILL", n.name, clusterTimeout)
	}
	n.proc = nil
}

// stopAll stops every running node with SIGINT and checks that each exits
// cleanly (a race-enabled node exits 66 when it found a data race).
func (c *cluster) stopAll() {
	t := c.t
	t.Helper()
	for _, n := range c.live() {
		if err := n.proc.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("interrupt %s: %v", n.name, err)
		}
	}
	for _, n := range c.live() {
		select {
		case <-n.proc.done:
		case <-time.After(clusterTimeout):
			t.Fatalf("%s did not stop within %v of SIGINT", n.name, clusterTimeout)
		}
		if !n.proc.cmd.ProcessState.Success() {
			t.Errorf("%s stopped with %v, want exit status 0; its output:\n%s", n.name, n.proc.cmd.ProcessState, n.proc.out)
		}
		n.proc = nil
	}
}

// live returns the running nodes.
func (c *cluster) live() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		if n.proc != nil {
			out = append(out, n)
		}
	}
	return out
}

// nodeByID returns the node whose node ID is id, or nil.
func (c *cluster) nodeByID(id string) *clusterNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// operatorToken is the bootstrap operator token, which the first node to
// start on the empty database created in its data directory.
func (c *cluster) operatorToken() string {
	c.t.Helper()
	for _, n := range c.nodes {
		if b, err := os.ReadFile(filepath.Join(n.dir, "data", "bootstrap-token")); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	c.t.Fatal("no node wrote a bootstrap token")
	return ""
}

// client is an API client of node n with token, without retries: the
// tests see every answer as the node gave it.
func (c *cluster) client(n *clusterNode, token string) *client.Client {
	c.t.Helper()
	cl, err := client.New(client.Config{Addr: n.url, Token: token, HTTPClient: c.http, MaxRetries: -1})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// outputs is every node's output so far, of every start, for checks of
// what nodes log.
func (c *cluster) outputs() string {
	var b strings.Builder
	for _, n := range c.nodes {
		for _, l := range n.logs {
			b.WriteString(l.String())
		}
	}
	return b.String()
}

// waitFor polls cond until it returns true, failing t after
// clusterTimeout with what cond last said.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testwait.For(t, what, clusterTimeout, cond)
}

// syncList is a list safe for concurrent appends.
type syncList[T any] struct {
	mu    sync.Mutex
	items []T
}

func (l *syncList[T]) add(v T) {
	l.mu.Lock()
	l.items = append(l.items, v)
	l.mu.Unlock()
}

func (l *syncList[T]) all() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}
