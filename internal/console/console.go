package console

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/notify"
	"github.com/orgkms/orgkms/internal/shred"
)

// Cookie names and the security headers of every response.
const (
	SessionCookie = "orgkms_session"
	CSRFCookie    = "orgkms_csrf" // pre-session anti-forgery token of the sign-in form

	// CSP allows the console's own stylesheet and images, and form posts
	// to itself. A form post may answer with a redirect to the cloud's
	// consent page (Authorize, Step 1), and browsers apply form-action to
	// every redirect of a form submission, hence https: (and http: for a
	// consent page or callback served over plain HTTP in development).
	CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'"

	maxFormBytes = 64 << 10
)

//go:embed templates/*.html static/*
var files embed.FS

// Config configures the console handler.
type Config struct {
	Keys  *keys.Service
	CMK   *cmk.Service
	Users *auth.Users
	// Logger receives internal errors (never shown to the user).
	Logger *slog.Logger
	// SecureCookies marks cookies Secure even when the request itself is
	// not TLS (orgkms behind a TLS-terminating proxy with an https public
	// URL). Cookies are always Secure on TLS requests.
	SecureCookies bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Demo, when set, is shown on the Security page so that a newcomer can
	// complete the flow against the built-in Azure emulator (orgkms dev).
	Demo *Demo
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For header names the client (for sign-in throttling);
	// none by default: the client is the connection's peer.
	TrustedProxies []netip.Prefix
	// Webhooks manages the orgs' webhooks (the Notifications page); nil:
	// the page answers not found.
	Webhooks *notify.Service
	// Shred schedules and cancels org and data key deletions and disables
	// and enables data keys (deletion.go); nil: those pages answer not
	// found.
	Shred *shred.Service
	// SelfDelete lets an org's admin with the key_admin role schedule and
	// cancel the deletion of their own org (config orgs.self_delete), as
	// the API does; the platform operator always may.
	SelfDelete bool
}

// Demo names the Azure emulator's demo tenant, vault and key.
type Demo struct {
	TenantID, VaultURI, KeyName string
}

type handler struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns the console handler. It serves paths under /console/ and
// expects to be mounted there.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &handler{cfg: cfg, log: cfg.Logger, now: cfg.Now, pages: parsePages(), mux: http.NewServeMux()}
	h.routes()
	return h
}

// ServeHTTP sets the security headers of every response and dispatches.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

// routes declares every console route. Org pages name the action they
// need; orgRoute checks it with auth.Allowed before the page runs.
func (h *handler) routes() {
	static, _ := fs.Sub(files, "static")
	h.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /console/{$}", h.home)
	h.mux.HandleFunc("GET /console/signin", h.signInPage)
	h.mux.HandleFunc("POST /console/signin", h.signIn)
	h.mux.Handle("POST /console/signout", h.signedIn((*handler).signOut))
	h.mux.Handle("GET /console/orgs", h.signedIn((*handler).orgs))
	h.mux.HandleFunc("GET /console/orgs/{org}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, orgPath(r.PathValue("org"), ""), http.StatusSeeOther)
	})

	h.orgRoute("GET /console/orgs/{org}/{$}", auth.ActOrgRead, (*handler).overview)

	h.orgRoute("GET /console/orgs/{org}/users", auth.ActUsersManage, (*handler).users)
	h.orgRoute("POST /console/orgs/{org}/users", auth.ActUsersManage, (*handler).createUser)
	h.orgRoute("POST /console/orgs/{org}/users/{id}/roles", auth.ActUsersManage, (*handler).setRoles)

	h.orgRoute("GET /console/orgs/{org}/security", auth.ActCMKManage, (*handler).security)
	h.orgRoute("POST /console/orgs/{org}/security/authorize", auth.ActCMKManage, (*handler).authorize)
	h.orgRoute("POST /console/orgs/{org}/security/configure", auth.ActCMKManage, (*handler).configure)
	h.orgRoute("POST /console/orgs/{org}/security/test", auth.ActCMKManage, (*handler).testKey)
	h.orgRoute("GET /console/orgs/{org}/security/disable", auth.ActCMKManage, (*handler).disablePage)
	h.orgRoute("POST /console/orgs/{org}/security/disable", auth.ActCMKManage, (*handler).disable)
	h.orgRoute("POST /console/orgs/{org}/security/fallback", auth.ActCMKManage, (*handler).fallback)
	h.orgRoute("GET /console/orgs/{org}/security/staged", auth.ActCMKManage, (*handler).stagedPage)                   // staged.go
	h.orgRoute("POST /console/orgs/{org}/security/decrypt-only", auth.ActCMKManage, (*handler).setDecryptOnly)        // staged.go
	h.orgRoute("POST /console/orgs/{org}/security/revocation", auth.ActCMKManage, (*handler).scheduleRevocation)      // staged.go
	h.orgRoute("POST /console/orgs/{org}/security/revocation/cancel", auth.ActCMKManage, (*handler).cancelRevocation) // staged.go

	h.orgRoute("GET /console/orgs/{org}/keys", auth.ActKeyRead, (*handler).keys)
	h.orgRoute("POST /console/orgs/{org}/keys", auth.ActKeyManage, (*handler).createKey)
	h.orgRoute("POST /console/orgs/{org}/keys/{key}/rotate", auth.ActKeyManage, (*handler).rotateKey)
	h.orgRoute("POST /console/orgs/{org}/keys/{key}/min-version", auth.ActKeyManage, (*handler).setMinVersion)

	h.orgRoute("GET /console/orgs/{org}/webhooks", auth.ActWebhookManage, (*handler).webhooks)
	h.orgRoute("POST /console/orgs/{org}/webhooks", auth.ActWebhookManage, (*handler).createWebhook)
	h.orgRoute("GET /console/orgs/{org}/webhooks/{id}", auth.ActWebhookManage, (*handler).webhookHistory)
	h.orgRoute("POST /console/orgs/{org}/webhooks/{id}/test", auth.ActWebhookManage, (*handler).testWebhook)
	h.orgRoute("POST /console/orgs/{org}/webhooks/{id}/delete", auth.ActWebhookManage, (*handler).deleteWebhook)

	h.orgRoute("GET /console/orgs/{org}/audit", auth.ActAuditRead, (*handler).audit)
	h.orgRoute("GET /console/orgs/{org}/audit/export", auth.ActAuditRead, (*handler).auditExport)
	h.orgRoute("GET /console/orgs/{org}/usage", auth.ActAuditRead, (*handler).keyUse)
	h.orgRoute("GET /console/orgs/{org}/usage/export", auth.ActAuditRead, (*handler).keyUseExport)

	// Org deletion and the data-key lifecycle (deletion.go), authorized as
	// the API authorizes them.
	h.orgRouteIf("GET /console/orgs/{org}/delete", (*handler).mayDeleteOrg, (*handler).orgDeletePage)
	h.orgRouteIf("POST /console/orgs/{org}/delete", (*handler).mayDeleteOrg, (*handler).deleteOrg)
	h.orgRouteIf("POST /console/orgs/{org}/cancel-deletion", (*handler).mayDeleteOrg, (*handler).cancelOrgDeletion)
	h.orgRoute("POST /console/orgs/{org}/keys/{key}/disable", auth.ActKeyManage, (*handler).disableKey)
	h.orgRoute("POST /console/orgs/{org}/keys/{key}/enable", auth.ActKeyManage, (*handler).enableKey)
	h.orgRoute("GET /console/orgs/{org}/keys/{key}/delete", auth.ActKeyManage, (*handler).keyDeletePage)
	h.orgRoute("POST /console/orgs/{org}/keys/{key}/delete", auth.ActKeyManage, (*handler).deleteKey)
	h.orgRoute("POST /console/orgs/{org}/keys/{key}/cancel-deletion", auth.ActKeyManage, (*handler).cancelKeyDeletion)

	h.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(&request{w: w, r: r}, &fault.Error{Kind: fault.NotFound, Reason: "there is no such page in the console"})
	})
}

// request is one signed-in request.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	sess    auth.Session
	user    auth.User
	p       auth.Principal
	org     string     // from the path, for org pages
	orgName string     // the org's display name
	status  cmk.Status // the org's CMK status, for the banner

	life keys.Lifecycle // the org's deletion lifecycle, for its banner (deletion.go)
}

func (rq *request) allowed(act auth.Action) bool { return auth.Allowed(rq.p, act, rq.org) }

type pageFunc func(h *handler, rq *request) error

// errCSRF refuses a form post without the right anti-forgery token.
var errCSRF = &fault.Error{Kind: fault.Forbidden, Reason: "this form expired or did not come from this console (the anti-forgery check failed), so nothing was changed; go back, reload the page and try again"}

var errForbidden = &fault.Error{Kind: fault.Forbidden, Reason: "your roles do not allow this page or action; ask an administrator of the org if you need access"}

// signedIn resolves the session (redirecting to sign-in without one) and
// checks the anti-forgery token of every POST.
func (h *handler) signedIn(fn pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq, ok := h.session(w, r)
		if !ok {
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				h.fail(rq, &fault.Error{Kind: fault.Invalid, Reason: "the form could not be read; reload the page and try again"})
				return
			}
			if !auth.CheckCSRF(rq.sess, r.PostForm.Get("csrf_token")) {
				h.fail(rq, errCSRF)
				return
			}
		}
		if err := fn(h, rq); err != nil {
			h.fail(rq, err)
		}
	})
}

// orgRoute registers an org page that needs act on the org in the path.
func (h *handler) orgRoute(pattern string, act auth.Action, fn pageFunc) {
	h.orgRouteIf(pattern, func(_ *handler, rq *request) bool { return rq.allowed(act) }, fn)
}

// orgRouteIf registers an org page that the user may see when allow
// holds (for a rule beyond one auth.Allowed action).
func (h *handler) orgRouteIf(pattern string, allow func(h *handler, rq *request) bool, fn pageFunc) {
	h.mux.Handle(pattern, h.signedIn(func(h *handler, rq *request) error {
		rq.org = rq.r.PathValue("org")
		if !allow(h, rq) {
			return errForbidden
		}
		o, err := h.cfg.Keys.GetOrg(rq.r.Context(), rq.org)
		if err != nil {
			return err
		}
		rq.orgName = o.Name
		if rq.life, err = h.cfg.Keys.OrgLifecycle(rq.r.Context(), rq.org); err != nil {
			return err
		}
		if rq.status, err = h.cmkStatus(rq); err != nil {
			return err
		}
		return fn(h, rq)
	}))
}

func (h *handler) cmkStatus(rq *request) (cmk.Status, error) {
	if h.cfg.CMK == nil {
		return cmk.Status{Record: cmk.Record{OrgID: rq.org, State: cmk.StatePlatform}}, nil
	}
	return h.cfg.CMK.Status(rq.r.Context(), rq.org)
}

// session resolves the session cookie. Without a live session it
// redirects to the sign-in page (saying so when the session expired) and
// returns false.
func (h *handler) session(w http.ResponseWriter, r *http.Request) (*request, bool) {
	rq := &request{w: w, r: r}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		h.toSignIn(w, r, "")
		return nil, false
	}
	rq.sess, rq.user, rq.p, err = h.cfg.Users.Session(r.Context(), c.Value)
	if err != nil {
		if fault.KindOf(err) == fault.Unauthenticated {
			h.setCookie(w, r, SessionCookie, "", -1)
			h.toSignIn(w, r, "expired")
			return nil, false
		}
		h.fail(rq, err)
		return nil, false
	}
	return rq, true
}

// toSignIn redirects to the sign-in page, which brings the user back to
// the page they asked for (GET only).
func (h *handler) toSignIn(w http.ResponseWriter, r *http.Request, why string) {
	q := url.Values{}
	if why != "" {
		q.Set("why", why)
	}
	if r.Method == http.MethodGet && r.URL.Path != "/console/" {
		q.Set("next", r.URL.RequestURI())
	}
	u := "/console/signin"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// safeNext returns next if it is a console path on this host, else "".
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") ||
		!strings.HasPrefix(u.Path, "/console/") || strings.HasPrefix(u.Path, "/console/signin") {
		return ""
	}
	return next
}

func (h *handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: h.cfg.SecureCookies || r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// home sends the user to their org's overview (platform operators to the
// org list), or to sign-in.
func (h *handler) home(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.session(w, r)
	if !ok {
		return
	}
	http.Redirect(w, r, homeOf(rq.user), http.StatusSeeOther)
}

func homeOf(u auth.User) string {
	if u.OrgID == "" {
		return "/console/orgs"
	}
	return orgPath(u.OrgID, "")
}

// orgPath is the path of an org page; page "" is the overview.
func orgPath(org, page string) string {
	return "/console/orgs/" + url.PathEscape(org) + "/" + page
}

// redirect answers a successful form post (post/redirect/get).
func (rq *request) redirect(path string) error {
	http.Redirect(rq.w, rq.r, path, http.StatusSeeOther)
	return nil
}

// statusOf maps a fault kind to the HTTP status of an error page.
func statusOf(k fault.Kind) int { return k.HTTPStatus() }

// errStatus is the HTTP status of a page that shows err on a form; it
// logs internal errors.
func (h *handler) errStatus(rq *request, err error) int {
	kind := fault.KindOf(err)
	status := statusOf(kind)
	if status >= 500 {
		h.log.Error("console request failed", slog.String("kind", kind.Code()), slog.String("path", rq.r.URL.Path), slog.String("error", err.Error()))
	}
	return status
}

func invalid(field, reason string) error {
	return &fault.Error{Kind: fault.Invalid, Field: field, Reason: reason}
}

// reasonOf is the short reason of a validation error, else its message.
func reasonOf(err error) string {
	if fe := fault.As(err); fe != nil && fe.Kind == fault.Invalid && fe.Reason != "" {
		return fe.Reason
	}
	return fault.Message(err)
}

// fail renders an error page with the customer message of err. Internal
// errors are logged (with their underlying text) and shown without it.
func (h *handler) fail(rq *request, err error) {
	kind := fault.KindOf(err)
	status := h.errStatus(rq, err)
	title := "Something went wrong"
	switch kind {
	case fault.Forbidden:
		title = "Access denied"
	case fault.NotFound:
		title = "Not found"
	}
	v := &view{Title: title, Error: fault.Message(err)}
	if rq.user.ID == "" || kind == fault.Forbidden || kind == fault.NotFound {
		// No org layout for pages the user may not see.
		rq.org = ""
	}
	h.render(rq, status, "error", v)
}

// view is what every template gets.
type view struct {
	Title   string
	Active  string // the nav item of the page
	Email   string // the signed-in user, "" on the sign-in page
	Home    string // the user's landing page
	CSRF    string
	Org     string
	OrgName string
	Nav     struct{ Users, Security, Keys, Audit, Orgs, Webhooks bool }
	Banner  *banner
	Refresh bool // reload every 2 s (a job is running)
	Flash   string
	Error   string            // the page's error message
	Fields  map[string]string // field name → what is wrong with it
	Form    url.Values        // what the user typed, to show again
	Data    any               // the page's own data

	// Deletion is the org's pending or done deletion (deletion.go), and
	// DeleteOrg whether the user may schedule or cancel it.
	Deletion  *deletionBanner
	DeleteOrg bool
}

// FieldError returns the error of a form field, "" when none.
func (v *view) FieldError(name string) string { return v.Fields[name] }

// Value returns what the user typed in a field.
func (v *view) Value(name string) string { return v.Form.Get(name) }

// Checked reports whether value was among the values typed for name.
func (v *view) Checked(name, value string) bool {
	for _, s := range v.Form[name] {
		if s == value {
			return true
		}
	}
	return false
}

// formError shows err on the form: a field error when it names a field,
// and the customer message at the top.
func (v *view) formError(err error, fieldOf map[string]string) {
	v.Error = fault.Message(err)
	fe := fault.As(err)
	if fe == nil || fe.Field == "" {
		return
	}
	name := fe.Field
	if n, ok := fieldOf[name]; ok {
		name = n
	}
	if v.Fields == nil {
		v.Fields = map[string]string{}
	}
	v.Fields[name] = orElse(fe.Reason, v.Error)
	if fe.Reason != "" {
		v.Error = "Check the highlighted field: " + fe.Reason
	}
}

func orElse(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// render executes page name in the layout. The layout gets the user, the
// org navigation (only the links the user's roles allow) and the banner.
func (h *handler) render(rq *request, status int, name string, v *view) {
	if rq.user.ID != "" {
		v.Email, v.CSRF, v.Home = rq.user.Email, rq.sess.CSRF, homeOf(rq.user)
		v.Nav.Orgs = auth.Allowed(rq.p, auth.ActOrgList, "")
	}
	if rq.org != "" && rq.user.ID != "" {
		v.Org, v.OrgName = rq.org, rq.orgName
		v.Nav.Users = rq.allowed(auth.ActUsersManage)
		v.Nav.Security = rq.allowed(auth.ActCMKManage)
		v.Nav.Keys = rq.allowed(auth.ActKeyRead)
		v.Nav.Audit = rq.allowed(auth.ActAuditRead)
		v.Nav.Webhooks = h.cfg.Webhooks != nil && rq.allowed(auth.ActWebhookManage)
		rec := rq.status.Record
		v.Banner = bannerOf(rec, h.now())
		v.Deletion, v.DeleteOrg = h.deletionBanner(rq), h.cfg.Shred != nil && h.mayDeleteOrg(rq)
		// A vault that throttles answers: say that it throttles, not that
		// it is unreachable (its 429s are why the probe failed).
		degradedOnly := rec.Degraded && rec.State != cmk.StateLost && rec.State != cmk.StateRevoked
		if tb := throttlingBanner(rq.status.VaultBudget); tb != nil && (v.Banner == nil || degradedOnly) {
			v.Banner = tb
		}
	}
	t := h.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("console template failed", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(rq.w, "internal error", http.StatusInternalServerError)
		return
	}
	page := buf.Bytes()
	if rq.p.OrgID != "" || rq.user.ID == "" {
		// Where the platform master key lives is none of an org's business:
		// not in an error, an audit detail or a status line.
		page = []byte(h.cfg.Keys.RedactPlatformKey(string(page)))
	}
	rq.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	rq.w.WriteHeader(status)
	rq.w.Write(page)
}

// banner warns on every org page that the org's customer managed key is
// unusable or its vault unreachable.
type banner struct {
	Class, Title, Text, Remedy string
}

func bannerOf(rec cmk.Record, now time.Time) *banner {
	switch {
	case rec.State == cmk.StateLost:
		return &banner{Class: "banner-lost", Title: "Customer managed key destroyed.",
			Text:   orElse(rec.Reason, "the org's customer managed key was purged from its vault") + ".",
			Remedy: "The org's data protected by this key is unrecoverable: nobody, including orgkms, can decrypt it any more. To use the org for new data, fall back to a new platform root key: orgkms cmk fallback --org " + rec.OrgID + " --confirm-data-loss (the loss is recorded)."}
	case rec.State == cmk.StateRevoked:
		b := &banner{Class: "banner-revoked", Title: "Customer managed key revoked.",
			Text: orElse(rec.Reason, "the org's customer managed key cannot be used") + ". Until it can, orgkms refuses to encrypt or decrypt this org's data."}
		switch rec.ReasonCode {
		case fault.CMKPermissionMissing.Code():
			b.Remedy = "To restore access: give orgkms' application Get, Wrap Key and Unwrap Key in the vault's access policy, or authorize it again in Settings → Security (Step 1)."
		case fault.CMKConsentRevoked.Code():
			b.Remedy = "To restore access: an administrator of your Microsoft Entra ID tenant grants orgkms admin consent again (Settings → Security → Step 1, Authorize again)."
		case fault.CMKDeleted.Code():
			b.Remedy = "To restore access: recover the key in the Azure portal (Key Vault → Keys → Manage deleted keys)"
			if !rec.RecoverableUntil.IsZero() {
				b.Remedy += " before " + fmtTime(rec.RecoverableUntil) + "; after that the data is lost"
			}
			b.Remedy += "."
		default:
			b.Remedy = "To restore access: enable the key in the Azure portal and check its activation and expiration dates."
		}
		b.Remedy += " orgkms checks the key regularly and resumes by itself once it works again."
		return b
	case rec.Degraded:
		return &banner{Class: "banner-degraded", Title: "Key vault unreachable.",
			Text:   "orgkms cannot reach the org's customer managed key (" + orElse(rec.LastProbeError, "the vault did not answer") + "). It keeps serving the org from its short-lived in-memory cache.",
			Remedy: "If this lasts, requests for the org will fail; check the vault's availability and network rules."}
	case !rec.DataLostAt.IsZero() && rec.State == cmk.StatePlatform:
		return &banner{Class: "banner-lost", Title: "Data lost on " + fmtTime(rec.DataLostAt) + ".",
			Text:   "The org's customer managed key was purged; the org fell back to a new platform root key. Data encrypted before then is unrecoverable.",
			Remedy: "New data is protected and works as usual; to protect it with your own key again, enable customer managed keys in Settings → Security."}
	case rec.Warning != "":
		return &banner{Class: "banner-degraded", Title: "Key rotation not followed.", Text: rec.Warning + ".",
			Remedy: "The org keeps working with the key version in use; orgkms follows the new version at its next check once it is tagged."}
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

var funcs = template.FuncMap{
	"when": fmtTime,
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"path": orgPath,
	"esc":  url.PathEscape,
}

// parsePages parses each page template together with the layout.
func parsePages() map[string]*template.Template {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "impact" {
			continue // impact.html is a part of pages, not a page
		}
		pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/impact.html", n))
	}
	return pages
}
