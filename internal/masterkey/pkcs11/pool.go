package pkcs11

import (
	"context"
	"slices"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/orgkms/orgkms/internal/fault"
)

// token is the connection to one token: its module, slot, login and a
// bounded pool of sessions.
//
// The pool holds at most cap(sem) sessions: a caller takes a place in sem
// (waiting, or giving up when its context ends), then an idle session or a
// new one. A session that failed with a "session lost" return value is
// closed instead of being put back; a "token lost" value also starts a new
// connection generation: the slot is looked up again and the user logs in
// again, and sessions of older generations are closed when they come back.
type token struct {
	key    tokenKey
	getenv func(string) string
	sem    chan struct{}
	idle   chan session

	mu        sync.Mutex
	mod       *module
	slot      uint
	connected bool
	gen       uint64
	closed    bool

	handles handles // object handles by label and version
}

type session struct {
	h   p11.SessionHandle
	gen uint64
}

func (t *token) resource() string { return "pkcs11 token " + t.key.label }

// acquire returns a logged-in session, waiting for a place in the pool.
func (t *token) acquire(ctx context.Context) (session, *p11.Ctx, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return session{}, nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		<-t.sem
		return session{}, nil, &fault.Error{Kind: fault.Unavailable, Reason: "the PKCS#11 provider is closed"}
	}
	if !t.connected {
		s, err := t.connect()
		if err != nil {
			<-t.sem
			return session{}, nil, err
		}
		return s, t.mod.ctx, nil
	}
	for {
		select {
		case s := <-t.idle:
			if s.gen == t.gen {
				return s, t.mod.ctx, nil
			}
			t.mod.ctx.CloseSession(s.h)
			continue
		default:
		}
		break
	}
	h, err := t.mod.ctx.OpenSession(t.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err == nil {
		// The login belongs to the application, and ends when its last
		// session closes: a new session after all were dropped logs in.
		err = t.ensureLogin(h)
		if err != nil {
			t.mod.ctx.CloseSession(h)
		}
	}
	if err != nil {
		<-t.sem
		if tokenLost(err) {
			t.connected = false
		}
		return session{}, nil, err
	}
	return session{h: h, gen: t.gen}, t.mod.ctx, nil
}

// ensureLogin logs the user in on h unless the application is logged in
// already. Called with t.mu held.
func (t *token) ensureLogin(h p11.SessionHandle) error {
	c := t.mod.ctx
	if info, err := c.GetSessionInfo(h); err != nil {
		return err
	} else if info.State == p11.CKS_RW_USER_FUNCTIONS || info.State == p11.CKS_RO_USER_FUNCTIONS {
		return nil
	}
	pin, err := readPIN(t.key.pinSource, t.getenv)
	if err != nil {
		return err
	}
	if err := c.Login(h, p11.CKU_USER, pin); err != nil {
		if rv, ok := err.(p11.Error); !ok || rv != p11.CKR_USER_ALREADY_LOGGED_IN {
			fe := fault.As(classify("login", err, t.resource()))
			fe.Reason += " (PIN source " + t.key.pinSource + ")"
			return fe
		}
	}
	return nil
}

// connect loads the module (once), finds the slot of the token by label,
// opens a session and logs in. Called with t.mu held.
func (t *token) connect() (session, error) {
	if t.mod == nil {
		m, err := acquireModule(t.key.module)
		if err != nil {
			return session{}, err
		}
		t.mod = m
	}
	c := t.mod.ctx
	slots, err := c.GetSlotList(true)
	if err != nil {
		return session{}, err
	}
	var labels []string
	found := false
	for _, id := range slots {
		info, err := c.GetTokenInfo(id)
		if err != nil {
			continue
		}
		if info.Label == t.key.label {
			t.slot, found = id, true
			break
		}
		labels = append(labels, info.Label)
	}
	if !found {
		slices.Sort(labels)
		return session{}, &fault.Error{Kind: fault.KeyNotFound, Resource: t.resource(),
			Reason: "no token labelled " + t.key.label + " in the PKCS#11 module " + t.key.module + " (tokens present: " + strings.Join(labels, ", ") + ")"}
	}
	h, err := c.OpenSession(t.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return session{}, err
	}
	if err := t.ensureLogin(h); err != nil {
		c.CloseSession(h)
		return session{}, err
	}
	t.gen++
	t.connected = true
	return session{h: h, gen: t.gen}, nil
}

// release gives s back to the pool, or closes it when bad, stale or the
// token is closed.
func (t *token) release(s session, bad bool) {
	t.mu.Lock()
	if bad || s.gen != t.gen || t.closed {
		if t.mod != nil {
			t.mod.ctx.CloseSession(s.h)
		}
	} else {
		t.idle <- s // never blocks: at most cap(sem) sessions exist
	}
	t.mu.Unlock()
	<-t.sem
}

// lost starts a new connection generation after err, unless another caller
// already did.
func (t *token) lost(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen != gen || !t.connected {
		return
	}
	t.connected = false
	for {
		select {
		case s := <-t.idle:
			t.mod.ctx.CloseSession(s.h)
			continue
		default:
		}
		return
	}
}

// do runs fn on a pooled session. When fn fails because the session or the
// token was lost, the session is dropped and fn runs once more on a fresh
// one (after a new login when the token was lost).
func (t *token) do(ctx context.Context, fn func(c *p11.Ctx, s p11.SessionHandle) error) error {
	for attempt := 0; ; attempt++ {
		s, c, err := t.acquire(ctx)
		if err != nil {
			return err
		}
		err = fn(c, s.h)
		if err != nil && sessionLost(err) {
			t.handles.clear()
			t.release(s, true)
			if tokenLost(err) {
				t.lost(s.gen)
			}
			if attempt == 0 && ctx.Err() == nil {
				continue
			}
			return err
		}
		t.release(s, false)
		return err
	}
}

// close closes the idle sessions and releases the module; sessions in use
// are closed when they come back.
func (t *token) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	if t.mod == nil {
		return
	}
	for {
		select {
		case s := <-t.idle:
			t.mod.ctx.CloseSession(s.h)
			continue
		default:
		}
		break
	}
	// Wait for no session in use: every place in sem is taken back here.
	// Callers in flight hold t.mu only briefly, so release them first.
	t.mu.Unlock()
	for range cap(t.sem) {
		t.sem <- struct{}{}
	}
	t.mu.Lock()
	t.mod.release()
	t.mod = nil
}
