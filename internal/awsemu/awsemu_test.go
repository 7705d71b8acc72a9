package awsemu

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestLocalKMSPinned: the version the tests name is the one make
// local-kms installs.
func TestLocalKMSPinned(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LOCAL_KMS_VERSION := (\S+)$`).FindSubmatch(b)
	if m == nil || string(m[1]) != LocalKMSVersion {
		t.Fatalf("Makefile pins local-kms %q, awsemu.LocalKMSVersion is %q", m, LocalKMSVersion)
	}
}

func assumeRole(t *testing.T, s *STS, akid string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+akid+"/20261207/eu-west-2/sts/aws4_request, SignedHeaders=host, Signature=00")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestSTSChecks: the stand-in refuses what STS refuses, in its shapes.
func TestSTSChecks(t *testing.T) {
	s := NewSTS("AKIDPLATFORM")
	role := "arn:aws:iam::111122223333:role/r"
	s.AllowRole(role, "ext-1")
	form := func(mod func(url.Values)) url.Values {
		f := url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {role}, "RoleSessionName": {"orgkms-1"}, "ExternalId": {"ext-1"}, "DurationSeconds": {"900"}}
		if mod != nil {
			mod(f)
		}
		return f
	}
	cases := []struct {
		name   string
		akid   string
		form   url.Values
		status int
		code   string
	}{
		{"ok", "AKIDPLATFORM", form(nil), 200, ""},
		{"wrong external ID", "AKIDPLATFORM", form(func(f url.Values) { f.Set("ExternalId", "ext-2") }), 403, "<Code>AccessDenied</Code>"},
		{"no external ID", "AKIDPLATFORM", form(func(f url.Values) { f.Del("ExternalId") }), 403, "<Code>AccessDenied</Code>"},
		{"unknown role", "AKIDPLATFORM", form(func(f url.Values) { f.Set("RoleArn", role+"x") }), 403, "<Code>AccessDenied</Code>"},
		{"other caller", "AKIDOTHER", form(nil), 403, "<Code>InvalidClientTokenId</Code>"},
		{"short duration", "AKIDPLATFORM", form(func(f url.Values) { f.Set("DurationSeconds", "899") }), 400, "<Code>ValidationError</Code>"},
		{"other action", "AKIDPLATFORM", form(func(f url.Values) { f.Set("Action", "GetSessionToken") }), 400, "<Code>InvalidAction</Code>"},
	}
	for _, c := range cases {
		w := assumeRole(t, s, c.akid, c.form)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.code) || w.Header().Get("X-Amzn-RequestId") == "" {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
		}
	}
	w := assumeRole(t, s, "AKIDPLATFORM", form(nil))
	akid := regexp.MustCompile(`<AccessKeyId>(ASIA[0-9A-F]+)</AccessKeyId>`).FindStringSubmatch(w.Body.String())
	if akid == nil {
		t.Fatalf("no session access key: %s", w.Body)
	}
	if se, ok := s.Session(akid[1]); !ok || se.RoleARN != role || se.ExternalID != "ext-1" {
		t.Fatalf("session %+v, %v", se, ok)
	}
	if !strings.Contains(w.Body.String(), "arn:aws:sts::111122223333:assumed-role/r/orgkms-1") {
		t.Fatalf("assumed role ARN missing: %s", w.Body)
	}
}

func TestBlobARN(t *testing.T) {
	arn := "arn:aws:kms:eu-west-2:111122223333:key/k"
	blob := append([]byte{byte(len(arn))}, arn...)
	blob = append(blob, 0, 0, 0, 0, 1, 2, 3)
	if got := blobARN(blob); got != arn {
		t.Fatalf("blobARN = %q", got)
	}
	for _, b := range [][]byte{nil, {200, 'a'}} {
		if got := blobARN(b); got != "" {
			t.Fatalf("blobARN(%v) = %q", b, got)
		}
	}
}
