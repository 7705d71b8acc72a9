package awsemu

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// STS is a stand-in for AWS STS AssumeRole. It is an http.Handler.
type STS struct {
	// PlatformAccessKeyID is the access key of the platform's own
	// credentials: requests signed by another key are refused with 403
	// InvalidClientTokenId.
	PlatformAccessKeyID string
	// Lifetime, when not zero, replaces the requested DurationSeconds (to
	// test renewal with short sessions).
	Lifetime time.Duration

	mu       sync.Mutex
	roles    map[string]string // role ARN → the external ID its trust policy requires
	sessions map[string]Session
	calls    int
}

// Session is one issued set of session credentials.
type Session struct {
	RoleARN, SessionName, ExternalID string
	Expires                          time.Time
}

// NewSTS returns an STS that trusts the platform's access key id.
func NewSTS(platformAccessKeyID string) *STS {
	return &STS{PlatformAccessKeyID: platformAccessKeyID, roles: map[string]string{}, sessions: map[string]Session{}}
}

// AllowRole lets the platform assume roleARN with externalID (the role's
// trust policy names the platform and the condition sts:ExternalId).
func (s *STS) AllowRole(roleARN, externalID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleARN] = externalID
}

// DenyRole removes roleARN's trust of the platform.
func (s *STS) DenyRole(roleARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.roles, roleARN)
}

// Calls is the number of AssumeRole calls answered so far.
func (s *STS) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Session returns the live (unexpired) session of accessKeyID.
func (s *STS) Session(accessKeyID string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.sessions[accessKeyID]
	if !ok || !time.Now().Before(se.Expires) {
		return Session{}, false
	}
	return se, true
}

// Issued reports whether accessKeyID was issued by s (live or expired).
func (s *STS) Issued(accessKeyID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sessions[accessKeyID]
	return ok
}

// accessKeyOf returns the access key id of a SigV4 Authorization header.
func accessKeyOf(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	akid, _, _ := strings.Cut(cred, "/")
	return akid
}

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

type stsError struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	NS      string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	NS      string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		} `xml:"Credentials"`
		AssumedRoleUser struct {
			AssumedRoleID string `xml:"AssumedRoleId"`
			Arn           string `xml:"Arn"`
		} `xml:"AssumedRoleUser"`
	} `xml:"AssumeRoleResult"`
	Metadata struct {
		RequestID string `xml:"RequestId"`
	} `xml:"ResponseMetadata"`
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeXML(w http.ResponseWriter, status int, v any) {
	id := randomHex(16)
	switch x := v.(type) {
	case *stsError:
		x.RequestID = id
	case *assumeRoleResponse:
		x.Metadata.RequestID = id
	}
	b, _ := xml.Marshal(v)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", id)
	w.WriteHeader(status)
	w.Write(b)
}

func stsFail(w http.ResponseWriter, status int, code, msg string) {
	e := &stsError{NS: stsNS}
	e.Error.Type, e.Error.Code, e.Error.Message = "Sender", code, msg
	writeXML(w, status, e)
}

// ServeHTTP answers AssumeRole as STS's Query API does.
func (s *STS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		stsFail(w, http.StatusBadRequest, "InvalidAction", "expected a POST of a form")
		return
	}
	f := r.PostForm
	if f.Get("Action") != "AssumeRole" || f.Get("Version") != "2011-06-15" {
		stsFail(w, http.StatusBadRequest, "InvalidAction", "Could not find operation "+f.Get("Action")+" for version "+f.Get("Version"))
		return
	}
	if akid := accessKeyOf(r); akid != s.PlatformAccessKeyID {
		stsFail(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	role, session, ext := f.Get("RoleArn"), f.Get("RoleSessionName"), f.Get("ExternalId")
	secs, err := strconv.Atoi(f.Get("DurationSeconds"))
	if f.Get("DurationSeconds") == "" {
		secs, err = 3600, nil
	}
	if err != nil || secs < 900 || secs > 43200 {
		stsFail(w, http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint")
		return
	}
	if len(session) < 2 || len(session) > 64 {
		stsFail(w, http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint")
		return
	}
	s.mu.Lock()
	s.calls++
	want, known := s.roles[role]
	s.mu.Unlock()
	if !known || want != ext {
		// AWS cannot tell a wrong external ID from a trust policy that does
		// not name the caller: one answer for both.
		stsFail(w, http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: arn:aws:iam::000000000000:user/platform is not authorized to perform: sts:AssumeRole on resource: %s", role))
		return
	}
	life := time.Duration(secs) * time.Second
	if s.Lifetime != 0 {
		life = s.Lifetime
	}
	expires := time.Now().Add(life).UTC().Truncate(time.Second)
	akid := "ASIA" + strings.ToUpper(randomHex(8))
	s.mu.Lock()
	s.sessions[akid] = Session{RoleARN: role, SessionName: session, ExternalID: ext, Expires: expires}
	s.mu.Unlock()
	out := &assumeRoleResponse{NS: stsNS}
	c := &out.Result.Credentials
	c.AccessKeyID, c.SecretAccessKey, c.SessionToken, c.Expiration = akid, randomHex(20), randomHex(32), expires.Format(time.RFC3339)
	account, name := roleParts(role)
	out.Result.AssumedRoleUser.AssumedRoleID = "AROA" + strings.ToUpper(randomHex(8)) + ":" + session
	out.Result.AssumedRoleUser.Arn = "arn:aws:sts::" + account + ":assumed-role/" + name + "/" + session
	writeXML(w, http.StatusOK, out)
}

// roleParts returns the account and the role name of a role ARN.
func roleParts(role string) (account, name string) {
	parts := strings.SplitN(role, ":", 6)
	if len(parts) != 6 {
		return "", role
	}
	name = parts[5][strings.LastIndex(parts[5], "/")+1:]
	return parts[4], name
}
