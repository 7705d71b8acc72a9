package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/mail"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
)

// User is a console user. Org users hold admin, key_admin and member roles
// in their org; platform users (OrgID "") hold operator.
type User struct {
	ID           string // "usr_..."
	OrgID        string // "" for platform operators
	Email        string // lowercase, unique
	Name         string
	Roles        []Role
	PasswordHash string // argon2id, PHC string format
	CreatedAt    time.Time
	Disabled     bool
}

// Session is a signed-in browser session. Only the SHA-256 of its secret is
// stored (ID).
type Session struct {
	ID        string // hex SHA-256 of the cookie secret
	UserID    string
	CSRF      string // per-session anti-forgery token
	CreatedAt time.Time
	ExpiresAt time.Time
}

// UserStore persists users and sessions. Implemented by the storage
// packages. Errors are *fault.Error: NotFound, Conflict (duplicate email).
type UserStore interface {
	// CreateUser stores u and appends ev to the audit chain of u's org (or
	// the platform) in the same transaction.
	CreateUser(ctx context.Context, u User, ev audit.Event) error
	GetUser(ctx context.Context, id string) (User, error)
	UserByEmail(ctx context.Context, email string) (User, error)
	// ListUsers lists the users of an org ("" = platform users), by email.
	ListUsers(ctx context.Context, orgID string) ([]User, error)
	// UpdateUser replaces u's Name, Roles, PasswordHash and Disabled, with ev.
	UpdateUser(ctx context.Context, u User, ev audit.Event) error
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions signs a user out everywhere.
	DeleteUserSessions(ctx context.Context, userID string) error
}

// Argon2id parameters (RFC 9106 second recommendation, 64 MiB).
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 2
	argonKeyLen  = 32
)

// HashPassword returns the argon2id PHC string of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches an argon2id PHC string.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<21 || t == 0 || t > 20 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked when the user does not exist, so sign-in takes the
// same time for unknown and known emails.
var dummyHash = sync.OnceValue(func() string { h, _ := HashPassword("orgkms-dummy-password"); return h })

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 12

// ValidatePassword checks a new password.
func ValidatePassword(pw string) error {
	switch {
	case utf8.RuneCountInString(pw) < MinPasswordLength:
		return &fault.Error{Kind: fault.Invalid, Field: "password", Reason: "must be at least " + strconv.Itoa(MinPasswordLength) + " characters"}
	case len(pw) > 256:
		return &fault.Error{Kind: fault.Invalid, Field: "password", Reason: "must be at most 256 bytes"}
	}
	return nil
}

// Users manages console users, their passwords and sessions, and limits
// sign-in attempts. Safe for concurrent use.
type Users struct {
	st         UserStore
	now        func() time.Time
	sessionTTL time.Duration

	mu       sync.Mutex
	failures map[string]strikes // sign-in failures by throttle key
}

// NewUsers returns the user service. sessionTTL 0 means 8 hours.
func NewUsers(st UserStore, now func() time.Time, sessionTTL time.Duration) *Users {
	if now == nil {
		now = time.Now
	}
	if sessionTTL <= 0 {
		sessionTTL = 8 * time.Hour
	}
	return &Users{st: st, now: now, sessionTTL: sessionTTL, failures: map[string]strikes{}}
}

// NewUserRequest describes a user to create.
type NewUserRequest struct {
	OrgID    string
	Email    string
	Name     string
	Roles    []Role
	Password string
}

func normalizeEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		return "", &fault.Error{Kind: fault.Invalid, Field: "email", Reason: "must be an email address such as alice@example.com"}
	}
	return s, nil
}

func checkUserRoles(orgID string, roles []Role) error {
	for _, r := range roles {
		switch {
		case r == RoleOperator && orgID != "":
			return &fault.Error{Kind: fault.Invalid, Field: "roles", Reason: "operator is a platform role"}
		case r == RoleService:
			return &fault.Error{Kind: fault.Invalid, Field: "roles", Reason: "service is a role for API tokens, not people"}
		case r != RoleOperator && orgID == "":
			return &fault.Error{Kind: fault.Invalid, Field: "roles", Reason: string(r) + " belongs to an org"}
		case !slices.Contains(AllRoles, r):
			return &fault.Error{Kind: fault.Invalid, Field: "roles", Reason: "unknown role " + string(r)}
		}
	}
	return nil
}

// Create creates a user.
func (u *Users) Create(ctx context.Context, actor string, req NewUserRequest) (User, error) {
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return User{}, err
	}
	if err := checkUserRoles(req.OrgID, req.Roles); err != nil {
		return User{}, err
	}
	if err := ValidatePassword(req.Password); err != nil {
		return User{}, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = email
	}
	if len(name) > 200 {
		return User{}, &fault.Error{Kind: fault.Invalid, Field: "name", Reason: "must be at most 200 characters"}
	}
	hash, err := HashPassword(req.Password)
	if err != nil {
		return User{}, &fault.Error{Kind: fault.Internal, Err: err}
	}
	now := u.now().UTC().Truncate(time.Microsecond)
	user := User{ID: NewID("usr_"), OrgID: req.OrgID, Email: email, Name: name, Roles: slices.Clone(req.Roles), PasswordHash: hash, CreatedAt: now}
	ev := audit.Event{OrgID: chainOf(req.OrgID), Time: now, Actor: actor, Action: "user.create", Target: "user/" + email, Details: map[string]string{"roles": joinRoles(req.Roles)}}
	if err := u.st.CreateUser(ctx, user, ev); err != nil {
		return User{}, err
	}
	return user, nil
}

func chainOf(org string) string {
	if org == "" {
		return audit.Platform
	}
	return org
}

// SetRoles replaces a user's roles (audited as a role change).
func (u *Users) SetRoles(ctx context.Context, actor, userID string, roles []Role) (User, error) {
	user, err := u.st.GetUser(ctx, userID)
	if err != nil {
		return User{}, err
	}
	if err := checkUserRoles(user.OrgID, roles); err != nil {
		return User{}, err
	}
	old := user.Roles
	user.Roles = slices.Clone(roles)
	ev := audit.Event{OrgID: chainOf(user.OrgID), Time: u.now().UTC(), Actor: actor, Action: "user.roles", Target: "user/" + user.Email,
		Details: map[string]string{"from": joinRoles(old), "to": joinRoles(roles)}}
	return user, u.st.UpdateUser(ctx, user, ev)
}

// SetPassword replaces a user's password and signs them out everywhere.
func (u *Users) SetPassword(ctx context.Context, actor, userID, password string) error {
	if err := ValidatePassword(password); err != nil {
		return err
	}
	user, err := u.st.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	if user.PasswordHash, err = HashPassword(password); err != nil {
		return &fault.Error{Kind: fault.Internal, Err: err}
	}
	ev := audit.Event{OrgID: chainOf(user.OrgID), Time: u.now().UTC(), Actor: actor, Action: "user.password", Target: "user/" + user.Email}
	if err := u.st.UpdateUser(ctx, user, ev); err != nil {
		return err
	}
	return u.st.DeleteUserSessions(ctx, userID)
}

// List lists an org's users.
func (u *Users) List(ctx context.Context, orgID string) ([]User, error) {
	return u.st.ListUsers(ctx, orgID)
}

// Get returns a user.
func (u *Users) Get(ctx context.Context, id string) (User, error) { return u.st.GetUser(ctx, id) }

// Sign-in throttling. Failed attempts are counted per (client address,
// account), per account across clients and per client across accounts;
// past a number of free failures each counter makes the next attempt wait,
// doubling with every further failure up to a ceiling. Nobody is ever
// locked out: the longest wait is a minute, for the one client that keeps
// failing on one account, and the real user signing in from another client
// waits at most the per-account ceiling of 30 seconds, however many
// clients guess at their password. Password guessing stays slow: past the
// free failures an account takes at most one guess per 30 s from the whole
// internet. Counters are forgotten after an hour without a failure.
type throttle struct {
	prefix    string
	free      int           // failures before any wait
	base, max time.Duration // the first wait, doubled per failure up to max
}

var (
	pairThrottle    = throttle{prefix: "pair:", free: 3, base: time.Second, max: time.Minute}
	accountThrottle = throttle{prefix: "account:", free: 10, base: time.Second, max: 30 * time.Second}
	clientThrottle  = throttle{prefix: "client:", free: 30, base: time.Second, max: 30 * time.Second}
)

const (
	forgetFailuresAfter = time.Hour
	maxThrottleEntries  = 100_000
)

// strikes counts the failures of one throttle key.
type strikes struct {
	n    int
	last time.Time
}

// wait is how long after its last failure a key with n failures waits.
func (th throttle) wait(n int) time.Duration {
	if n < th.free {
		return 0
	}
	d := th.base
	for i := th.free; i < n && d < th.max; i++ {
		d *= 2
	}
	return min(d, th.max)
}

type throttleKey struct {
	th  throttle
	key string
}

func signInKeys(email, client string) []throttleKey {
	return []throttleKey{
		{pairThrottle, pairThrottle.prefix + client + "|" + email},
		{accountThrottle, accountThrottle.prefix + email},
		{clientThrottle, clientThrottle.prefix + client},
	}
}

var errBadCredentials = &fault.Error{Kind: fault.Unauthenticated, Reason: "the email or password is incorrect"}

// reserve counts an attempt as a failure of every key before the password
// is checked, atomically, so parallel attempts cannot all pass a throttle;
// it returns how long to wait instead when a key is throttled. A
// successful sign-in gives the attempt back (release).
func (u *Users) reserve(keys []throttleKey) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	var wait time.Duration
	for _, k := range keys {
		s, ok := u.failures[k.key]
		if ok && now.Sub(s.last) > forgetFailuresAfter {
			delete(u.failures, k.key)
			s = strikes{}
		}
		// min: a clock that stepped back never makes a longer wait.
		if w := min(s.last.Add(k.th.wait(s.n)).Sub(now), k.th.wait(s.n)); w > wait {
			wait = w
		}
	}
	if wait > 0 {
		return wait
	}
	if len(u.failures) > maxThrottleEntries {
		for k, s := range u.failures {
			if now.Sub(s.last) > forgetFailuresAfter {
				delete(u.failures, k)
			}
		}
		// Still too many: forget half, the throttles' memory is bounded.
		n := 0
		for k := range u.failures {
			if len(u.failures) <= maxThrottleEntries/2 {
				break
			}
			if n%2 == 0 {
				delete(u.failures, k)
			}
			n++
		}
	}
	for _, k := range keys {
		s := u.failures[k.key]
		u.failures[k.key] = strikes{n: s.n + 1, last: now}
	}
	return 0
}

// failed dates the failure of a reserved attempt: waits count from the
// answer, not from the start of the (slow) password check.
func (u *Users) failed(keys []throttleKey) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	for _, k := range keys {
		if s, ok := u.failures[k.key]; ok && now.After(s.last) {
			s.last = now
			u.failures[k.key] = s
		}
	}
}

// release gives back a reserved attempt. signedIn clears the (client,
// account) pair: the user proved who they are from that client.
func (u *Users) release(keys []throttleKey, signedIn bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, k := range keys {
		s, ok := u.failures[k.key]
		switch {
		case !ok:
		case s.n <= 1 || signedIn && k.th.prefix == pairThrottle.prefix:
			delete(u.failures, k.key)
		default:
			s.n--
			u.failures[k.key] = s
		}
	}
}

// hashSlots bounds concurrent argon2id computations (64 MiB each), so a
// burst of sign-ins cannot exhaust memory.
var hashSlots = make(chan struct{}, max(2, runtime.NumCPU()))

func checkPasswordBounded(ctx context.Context, hash, password string) (bool, error) {
	select {
	case hashSlots <- struct{}{}:
	case <-ctx.Done():
		return false, &fault.Error{Kind: fault.Unavailable, Reason: "sign-in is busy; retry", Err: ctx.Err()}
	}
	defer func() { <-hashSlots }()
	return CheckPassword(hash, password), nil
}

// SignIn checks an email and password and starts a session. It returns the
// session and the cookie secret. After failures for the (client, account)
// pair, the account or the client (see [throttle]), it refuses with
// RateLimited and a RetryAfter of at most a minute, without checking the
// password.
func (u *Users) SignIn(ctx context.Context, email, password, client string) (Session, string, User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	keys := signInKeys(email, client)
	if wait := u.reserve(keys); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		unit := "seconds"
		if secs == 1 {
			unit = "second"
		}
		return Session{}, "", User{}, &fault.Error{Kind: fault.RateLimited, RetryAfter: time.Duration(secs) * time.Second,
			Reason: fmt.Sprintf("too many failed sign-in attempts; try again in %d %s", secs, unit)}
	}
	user, err := u.st.UserByEmail(ctx, email)
	if err != nil && fault.KindOf(err) != fault.NotFound {
		u.release(keys, false)
		return Session{}, "", User{}, err
	}
	hash := user.PasswordHash
	if err != nil {
		hash = dummyHash()
	}
	ok, herr := checkPasswordBounded(ctx, hash, password)
	if herr != nil {
		u.release(keys, false)
		return Session{}, "", User{}, herr
	}
	if !ok || err != nil || user.Disabled {
		u.failed(keys) // the reserved attempt counts as a failure
		return Session{}, "", User{}, errBadCredentials
	}
	u.release(keys, true)
	secret, id := newSessionSecret()
	now := u.now().UTC().Truncate(time.Microsecond)
	s := Session{ID: id, UserID: user.ID, CSRF: randomToken(), CreatedAt: now, ExpiresAt: now.Add(u.sessionTTL)}
	if err := u.st.CreateSession(ctx, s); err != nil {
		return Session{}, "", User{}, err
	}
	return s, secret, user, nil
}

// Session resolves a cookie secret to its live session, user and principal.
func (u *Users) Session(ctx context.Context, secret string) (Session, User, Principal, error) {
	if len(secret) < 20 || len(secret) > 100 {
		return Session{}, User{}, Principal{}, errNoSession
	}
	s, err := u.st.GetSession(ctx, sessionID(secret))
	if err != nil {
		if fault.KindOf(err) == fault.NotFound {
			return Session{}, User{}, Principal{}, errNoSession
		}
		return Session{}, User{}, Principal{}, err
	}
	if !u.now().Before(s.ExpiresAt) {
		if err := u.st.DeleteSession(ctx, s.ID); err != nil {
			return Session{}, User{}, Principal{}, err
		}
		return Session{}, User{}, Principal{}, errNoSession
	}
	user, err := u.st.GetUser(ctx, s.UserID)
	if err != nil || user.Disabled {
		return Session{}, User{}, Principal{}, errNoSession
	}
	return s, user, PrincipalOf(user), nil
}

var errNoSession = &fault.Error{Kind: fault.Unauthenticated, Reason: "your session expired; sign in again"}

// SignOut ends a session.
func (u *Users) SignOut(ctx context.Context, secret string) error {
	return u.st.DeleteSession(ctx, sessionID(secret))
}

// PrincipalOf is the principal of a signed-in user, for the same
// authorization policy as API tokens.
func PrincipalOf(u User) Principal {
	return Principal{Name: "user:" + u.Email, OrgID: u.OrgID, Roles: slices.Clone(u.Roles)}
}

// CheckCSRF compares a submitted anti-forgery token with the session's.
func CheckCSRF(s Session, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(token)) == 1
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newSessionSecret() (secret, id string) {
	secret = randomToken()
	return secret, sessionID(secret)
}

func sessionID(secret string) string {
	h := sha256.Sum256([]byte("orgkms/session/" + secret))
	return hex.EncodeToString(h[:])
}
