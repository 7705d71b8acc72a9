package awskms_test

import (
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
)

const (
	testKeyID  = "1234abcd-12ab-34cd-56ef-1234567890ab"
	testKeyARN = "arn:aws:kms:eu-west-2:111122223333:key/" + testKeyID
)

func TestParseKeyARN(t *testing.T) {
	good := []struct{ in, want string }{
		{testKeyARN, testKeyARN},
		{"  " + testKeyARN + "\n", testKeyARN},
		{"arn:aws:kms:eu-west-2:111122223333:key/1234ABCD-12AB-34CD-56EF-1234567890AB", testKeyARN},
		{"arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab", "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"},
	}
	for _, c := range good {
		a, err := awskms.ParseKeyARN(c.in, nil)
		if err != nil || a.String() != c.want {
			t.Errorf("ParseKeyARN(%q) = %v, %v; want %s", c.in, a, err, c.want)
		}
	}
	bad := []struct{ in, why string }{
		{"alias/orgkms", "alias"},
		{"arn:aws:kms:eu-west-2:111122223333:alias/orgkms", "alias"},
		{testKeyID, "bare key ID"},
		{"arn:aws:kms:eu-west-2:11112222333:key/" + testKeyID, "12 digits"},
		{"arn:aws:kms:EU-WEST-2:111122223333:key/" + testKeyID, "Region"},
		{"arn:aws:s3:eu-west-2:111122223333:key/" + testKeyID, "must look like"},
		{"arn:aws:kms:eu-west-2:111122223333:key/not-a-uuid", "UUID"},
		{"arn:evil:kms:eu-west-2:111122223333:key/" + testKeyID, "partition"},
		{"", "must look like"},
	}
	for _, c := range bad {
		_, err := awskms.ParseKeyARN(c.in, nil)
		if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), c.why) {
			t.Errorf("ParseKeyARN(%q) = %v, want Invalid naming %q", c.in, err, c.why)
		}
	}
	if _, err := awskms.ParseKeyARN(testKeyARN, []string{"us-east-1", "eu-central-1"}); fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "us-east-1, eu-central-1") {
		t.Errorf("a key outside the allowed Regions: %v", err)
	}
	if _, err := awskms.ParseKeyARN(testKeyARN, []string{"eu-west-2"}); err != nil {
		t.Errorf("a key in an allowed Region: %v", err)
	}
}

func TestParseRoleARNAndExternalID(t *testing.T) {
	for _, s := range []string{"arn:aws:iam::111122223333:role/orgkms", "arn:aws:iam::111122223333:role/path/to/orgkms+cmk=1,a.b@c-d"} {
		if _, err := awskms.ParseRoleARN(s); err != nil {
			t.Errorf("ParseRoleARN(%q): %v", s, err)
		}
	}
	for _, s := range []string{"arn:aws:iam::111122223333:user/alice", "arn:aws:iam:eu-west-2:111122223333:role/x", "arn:aws:iam::1111:role/x", "role/x", "arn:aws:iam::111122223333:role/"} {
		if _, err := awskms.ParseRoleARN(s); fault.KindOf(err) != fault.Invalid {
			t.Errorf("ParseRoleARN(%q) = %v, want Invalid", s, err)
		}
	}
	for _, s := range []string{"x", "has space", "semi;colon", strings.Repeat("a", 1225)} {
		if err := awskms.CheckExternalID(s); fault.KindOf(err) != fault.Invalid {
			t.Errorf("CheckExternalID(%q) = %v, want Invalid", s, err)
		}
	}
	if err := awskms.CheckExternalID(`org_acme+1=,.@:/\-`); err != nil {
		t.Errorf("CheckExternalID of every allowed character: %v", err)
	}
}

func TestRefRoundTrip(t *testing.T) {
	k, err := awskms.ParseKey(testKeyARN, "arn:aws:iam::111122223333:role/orgkms-cmk", "org+acme=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	k.Version = "0123abcd"
	uri := k.URI()
	want := "awskms://" + testKeyARN + "?external_id=org%2Bacme%3D1&role=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Forgkms-cmk#0123abcd"
	if uri != want {
		t.Fatalf("URI = %s, want %s", uri, want)
	}
	back, err := awskms.ParseURI(uri, nil)
	if err != nil || back != k {
		t.Fatalf("ParseURI(URI) = %+v, %v; want %+v", back, err, k)
	}
	// The generic parser reads it too, and the ref prints back the same.
	ref, err := masterkey.ParseRef(uri)
	if err != nil || ref.String() != uri {
		t.Fatalf("masterkey.ParseRef = %v, %v", ref, err)
	}
	// Without a role: the platform's own credentials.
	own, err := awskms.ParseURI("awskms://"+testKeyARN, nil)
	if err != nil || own.RoleARN != "" || own.URI() != "awskms://"+testKeyARN {
		t.Fatalf("platform key: %+v, %v", own, err)
	}
	for _, bad := range []string{
		"awskms://" + testKeyARN + "?role=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fx", // role without external ID
		"awskms://" + testKeyARN + "?external_id=abc",                                   // external ID without role
		"awskms://" + testKeyARN + "?region=eu-west-1",
		"awskms://" + testKeyARN + "?external_id=ab&external_id=cd&role=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fx",
		"azurekv://" + testKeyARN,
		"awskms://alias/orgkms",
	} {
		if _, err := awskms.ParseURI(bad, nil); fault.KindOf(err) != fault.Invalid {
			t.Errorf("ParseURI(%q) = %v, want Invalid", bad, err)
		}
	}
}

func TestSessionNameHidesExternalID(t *testing.T) {
	a := awskms.Key{ExternalID: "org-acme-secretish"}
	b := awskms.Key{ExternalID: "org-globex"}
	if a.SessionName() == b.SessionName() || strings.Contains(a.SessionName(), "acme") || len(a.SessionName()) > 64 {
		t.Fatalf("session names %q, %q", a.SessionName(), b.SessionName())
	}
}
