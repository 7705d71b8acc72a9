package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

// signInData is the sign-in page's own data.
type signInData struct {
	Next string
}

var signInMessages = map[string]string{
	"expired":    "Your session expired. Sign in again to continue.",
	"signed-out": "You are signed out.",
}

// preSessionToken returns the anti-forgery token of the sign-in form,
// setting its cookie when the browser has none (double-submit cookie).
func (h *handler) preSessionToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(CSRFCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 64 {
		return c.Value
	}
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	h.setCookie(w, r, CSRFCookie, tok, 0)
	return tok
}

func (h *handler) signInPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := &view{Title: "Sign in", Flash: signInMessages[q.Get("why")], Data: signInData{Next: safeNext(q.Get("next"))}}
	v.CSRF = h.preSessionToken(w, r)
	h.render(&request{w: w, r: r}, http.StatusOK, "signin", v)
}

// signIn checks the pre-session anti-forgery token, then the email and
// password (auth.Users.SignIn limits failed attempts), and starts a
// session.
func (h *handler) signIn(w http.ResponseWriter, r *http.Request) {
	rq := &request{w: w, r: r}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.fail(rq, &fault.Error{Kind: fault.Invalid, Reason: "the form could not be read; reload the page and try again"})
		return
	}
	c, err := r.Cookie(CSRFCookie)
	tok := r.PostForm.Get("csrf_token")
	if err != nil || tok == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(tok)) != 1 {
		h.fail(rq, &fault.Error{Kind: fault.Forbidden, Reason: "the sign-in form expired or did not come from this console (the anti-forgery check failed); reload the sign-in page and try again"})
		return
	}
	email, password := r.PostForm.Get("email"), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	_, secret, user, err := h.cfg.Users.SignIn(r.Context(), email, password, clientAddr(r, h.cfg.TrustedProxies))
	if err != nil {
		status := statusOf(fault.KindOf(err))
		if fe := fault.As(err); fe != nil && fe.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((fe.RetryAfter+time.Second-1)/time.Second)))
		}
		if status >= 500 {
			h.log.Error("sign-in failed", slog.String("error", err.Error()))
		}
		v := &view{Title: "Sign in", Error: fault.Message(err), Form: url.Values{"email": {email}}, Data: signInData{Next: next}}
		v.CSRF = tok
		if fault.KindOf(err) == fault.Unauthenticated {
			status = http.StatusUnauthorized
		}
		h.render(rq, status, "signin", v)
		return
	}
	// A session this browser had before ends: one browser, one session.
	if old, err := r.Cookie(SessionCookie); err == nil && old.Value != "" {
		if err := h.cfg.Users.SignOut(r.Context(), old.Value); err != nil && fault.KindOf(err) != fault.NotFound {
			h.log.Warn("ending the previous session failed", slog.String("error", err.Error()))
		}
	}
	// The pre-session token has done its job; the session has its own.
	h.setCookie(w, r, CSRFCookie, "", -1)
	h.setCookie(w, r, SessionCookie, secret, 0)
	if next == "" {
		next = homeOf(user)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// clientAddr is the address sign-in throttling counts failures by: the
// connection's peer, or, when the peer is a trusted proxy, the rightmost
// address of X-Forwarded-For that is not itself a trusted proxy (the
// leftmost entries are whatever the client chose to send).
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing to its left
		}
		a = a.Unmap()
		if !isTrusted(a) {
			return a.String()
		}
		addr = a
	}
	return addr.String()
}

func (h *handler) signOut(rq *request) error {
	if c, err := rq.r.Cookie(SessionCookie); err == nil {
		if err := h.cfg.Users.SignOut(rq.r.Context(), c.Value); err != nil && fault.KindOf(err) != fault.NotFound {
			return err
		}
	}
	h.setCookie(rq.w, rq.r, SessionCookie, "", -1)
	return rq.redirect("/console/signin?why=signed-out")
}
