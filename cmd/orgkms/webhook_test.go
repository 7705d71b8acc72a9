package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// hookReceivers are the receivers of the running scripts, by script and
// name.
var hookReceivers sync.Map // *testscript.TestScript + name → *scriptReceiver

type scriptReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []scriptRequest
}

type scriptRequest struct {
	header http.Header
	body   []byte
}

type receiverKey struct {
	ts   *testscript.TestScript
	name string
}

// cmdHookRecv implements "hookrecv NAME": it starts a webhook receiver
// (plain HTTP on loopback, as orgkms dev allows) and sets $NAME to its
// URL. A request to a path ending in /fail gets a 500, others a 204.
func cmdHookRecv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: hookrecv NAME")
	}
	r := &scriptReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, scriptRequest{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		if strings.HasSuffix(req.URL.Path, "/fail") {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "receiver down for maintenance")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	ts.Defer(r.srv.Close)
	hookReceivers.Store(receiverKey{ts, args[0]}, r)
	ts.Setenv(args[0], r.srv.URL+"/orgkms")
}

// cmdHookGot implements "hookgot NAME SECRET TYPE": the receiver NAME got
// a request with an event of TYPE whose signature verifies with SECRET by
// the documented algorithm (HMAC-SHA256 over timestamp "." body, a
// timestamp within 5 minutes).
func cmdHookGot(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: hookgot NAME SECRET TYPE")
	}
	v, ok := hookReceivers.Load(receiverKey{ts, args[0]})
	if !ok {
		ts.Fatalf("no receiver %s (hookrecv %s first)", args[0], args[0])
	}
	r := v.(*scriptReceiver)
	secret, typ := ts.Getenv(args[1]), args[2]
	if secret == "" {
		secret = args[1]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	found := false
	for _, rq := range r.got {
		var ev struct {
			Type string `json:"type"`
		}
		json.Unmarshal(rq.body, &ev)
		if ev.Type != typ {
			continue
		}
		ts0 := rq.header.Get("X-Orgkms-Timestamp")
		n, err := strconv.ParseInt(ts0, 10, 64)
		if err != nil {
			continue
		}
		sent := time.Unix(n, 0)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts0 + "." + string(rq.body)))
		want := "v1=" + hex.EncodeToString(mac.Sum(nil))
		if time.Since(sent).Abs() < 5*time.Minute && strings.Contains(rq.header.Get("X-Orgkms-Signature"), want) {
			found = true
		}
	}
	if found == neg {
		ts.Fatalf("receiver %s: a %s request signed with the secret: got %v, want %v (%d requests)", args[0], typ, found, !neg, len(r.got))
	}
}
