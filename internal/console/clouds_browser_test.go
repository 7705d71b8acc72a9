//go:build !no_gcpkms

package console_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/chromedp/chromedp"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/awsemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/awscloud"
	"github.com/orgkms/orgkms/internal/cmk/gcpcloud"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/server"
)

// The clouds browser test: one orgkms offering AWS KMS and Google Cloud
// KMS (no Azure), against local-kms behind the awsemu proxy with the STS
// stand-in, and the in-process Cloud KMS fake, each reached by its
// official SDK; org acme's admin chooses AWS, org globex's admin Google.
const (
	cloudsAKID      = "AKIDORGKMSPLATFORM"
	cloudsAccount   = "444455556666"
	cloudsSA        = "orgkms@orgkms-platform.iam.gserviceaccount.com"
	cloudsGCPKey    = "projects/globex-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/orgkms-cmk"
	cloudsRole      = "arn:aws:iam::" + awsemu.Account + ":role/orgkms-cmk"
	cloudsSecret    = "a-secret-of-at-least-32-bytes-for-external-ids"
	cloudsAdminPass = "admin-password-for-the-clouds-test"
)

type cloudsStack struct {
	url    string
	kms    *awsemu.KMS
	sts    *awsemu.STS
	aws    *kms.Client // the AWS customer's console
	keyARN string
	gcp    *gcpkmsemu.Server
	cmk    *cmk.Service
	awsC   awscloud.Cloud
	gcpC   gcpcloud.Cloud
}

func newCloudsStack(t *testing.T) *cloudsStack {
	t.Helper()
	ctx := context.Background()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("orgkms log (tail):\n%s", logs.tail(60))
		}
	})
	s := &cloudsStack{kms: awsemu.NewKMS(awsemu.LocalKMSURL(t)), sts: awsemu.NewSTS(cloudsAKID), gcp: gcpkmsemu.New()}
	s.kms.STS = s.sts
	ks := httptest.NewServer(s.kms)
	t.Cleanup(ks.Close)
	ss := httptest.NewServer(s.sts)
	t.Cleanup(ss.Close)
	s.aws = kms.New(kms.Options{Region: awsemu.Region, BaseEndpoint: aws.String(ks.URL),
		Credentials: credentials.NewStaticCredentialsProvider(cloudsAKID, "platform-secret", "")})
	out, err := s.aws.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("acme's orgkms CMK")})
	if err != nil {
		t.Fatal(err)
	}
	s.keyARN = aws.ToString(out.KeyMetadata.Arn)
	gaddr, err := s.gcp.Start(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.gcp.CreateKey(cloudsGCPKey, gcpkmsemu.KeyOptions{Labels: map[string]string{"orgkms-org": "globex"}}); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	t.Cleanup(srv.Close)
	s.url = "http://" + srv.Listener.Addr().String()
	platformKey := base64.StdEncoding.EncodeToString(randomKey(t, 32))
	env := map[string]string{"ORGKMS_MASTER_KEY": platformKey, "AWS_ACCESS_KEY_ID": cloudsAKID, "AWS_SECRET_ACCESS_KEY": "platform-secret"}
	cfg := config.Config{DataDir: t.TempDir(), PublicURL: s.url, MasterKey: "local:env:ORGKMS_MASTER_KEY"}
	cfg.CMK.Clouds, cfg.CMK.ProbeInterval, cfg.CMK.JobWorkers = []string{"aws", "gcp"}, config.Duration(time.Second), 2
	cfg.CMK.AWS = config.AWS{Enabled: true, Region: awsemu.Region, AllowedRegions: []string{awsemu.Region}, CredentialsSource: "env",
		KMSEndpoint: ks.URL, STSEndpoint: ss.URL, MaxAttempts: 1, AccountID: cloudsAccount, ExternalIDSecret: cloudsSecret}
	cfg.CMK.GCP = config.GCP{Enabled: true, Endpoint: gaddr, ServiceAccount: cloudsSA}
	srvx, err := server.Open(ctx, cfg, server.Options{Logger: log, Migrate: true, Getenv: func(k string) string { return env[k] },
		JobPoll: 100 * time.Millisecond, GCPInsecure: true})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := srvx.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
	})
	srvx.Start(context.Background())
	s.cmk = srvx.CMK
	s.awsC, _ = s.cmk.Cloud("aws").(awscloud.Cloud)
	s.gcpC, _ = s.cmk.Cloud("gcp").(gcpcloud.Cloud)
	for _, org := range []string{"acme", "globex"} {
		if _, err := srvx.Keys.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := srvx.Keys.Encrypt(ctx, "test", org, "default", []byte("hello"), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := srvx.Users.Create(ctx, "test", auth.NewUserRequest{OrgID: org, Email: "admin@" + org + ".example", Name: "Security Admin",
			Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}, Password: cloudsAdminPass}); err != nil {
			t.Fatal(err)
		}
	}
	mux.Handle("/", srvx.Handler)
	srv.Start()
	return s
}

func (s *cloudsStack) status(t *testing.T, org string) cmk.Status {
	t.Helper()
	st, err := s.cmk.Status(context.Background(), org)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// cloudCase is one cloud's run through the Security page.
type cloudCase struct {
	org, cloud string
	c          cmk.Cloud
	// wrong is a field and a value of it the cloud refuses; good the
	// right values of every field, by input id.
	wrongField, wrongValue string
	good                   map[string]string
	values                 map[string]string // data-value → what Step 1 shows to copy
	// deny and allow take orgkms' permission to decrypt away and give it
	// back; failCheck is the check that fails meanwhile, failRemedy words
	// of its remedy in the cloud's console.
	deny, allow           func()
	failCheck, failRemedy string
	// disable and enable act on the key in the customer's console;
	// reasonWords are words of the revocation reason.
	disable, enable func()
	reasonWords     string
	facts           []string // what the status shows of the key
	where           string   // how the status names the key
}

// TestBrowserClouds drives chromium through Settings → Security for AWS KMS
// and for Google Cloud KMS: the admin chooses the cloud, Step 1 is its
// grant with the values to copy (no authorize button), Step 2 its fields;
// a wrong field is named, Test Managed Key renders the cloud's table with
// a failure's remedy in that console's words, Save activates the key, the
// status shows the cloud's key fields and account; the key disabled in the
// emulator shows the cloud's reason and remedy, enabled again it is
// active. It runs in a private network namespace (local-kms).
func TestBrowserClouds(t *testing.T) {
	if !awsemu.Isolated(t) {
		return
	}
	b := startBrowser(t)
	s := newCloudsStack(t)
	sh := newShots(t)
	ctx := context.Background()
	gcpVersion := func(id string, st kmspb.CryptoKeyVersion_CryptoKeyVersionState) func() {
		return func() {
			if err := s.gcp.SetState(cloudsGCPKey, id, st); err != nil {
				t.Fatal(err)
			}
		}
	}
	awsKey := func(enable bool) func() {
		return func() {
			var err error
			if enable {
				_, err = s.aws.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(s.keyARN)})
			} else {
				_, err = s.aws.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(s.keyARN)})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []cloudCase{
		{org: "acme", cloud: "aws", c: s.awsC,
			wrongField: "role_arn", wrongValue: "orgkms-cmk",
			good:   map[string]string{"key-arn": s.keyARN, "role-arn": cloudsRole},
			values: map[string]string{"account_id": cloudsAccount, "external_id": s.awsC.ExternalID("acme")},
			deny:   func() { s.kms.Deny(s.keyARN, "kms:Decrypt") }, allow: func() { s.kms.Allow(s.keyARN) },
			failCheck: "roundtrip", failRemedy: "Key policy → Edit",
			disable: awsKey(false), enable: awsKey(true),
			reasonWords: "Key actions → Enable",
			facts:       []string{s.keyARN, cloudsRole},
			where:       "AWS KMS key " + s.keyARN[strings.LastIndex(s.keyARN, "/")+1:] + " in AWS account " + awsemu.Account},
		{org: "globex", cloud: "gcp", c: s.gcpC,
			wrongField: "key_name", wrongValue: "orgkms-cmk",
			good:   map[string]string{"key-name": cloudsGCPKey, "key-version": ""},
			values: map[string]string{"service_account": cloudsSA},
			deny: func() {
				if err := s.gcp.Revoke(cloudsGCPKey, gcpkmsemu.Anonymous, gcpkmsemu.PermDecrypt); err != nil {
					t.Fatal(err)
				}
			},
			allow: func() {
				if err := s.gcp.Grant(cloudsGCPKey, gcpkmsemu.Anonymous, gcpkmsemu.PermDecrypt); err != nil {
					t.Fatal(err)
				}
			},
			failCheck: "roundtrip", failRemedy: "Cloud KMS CryptoKey Encrypter/Decrypter",
			disable: gcpVersion("1", kmspb.CryptoKeyVersion_DISABLED), enable: gcpVersion("1", kmspb.CryptoKeyVersion_ENABLED),
			reasonWords: "Versions → Enable",
			facts:       []string{cloudsGCPKey, "globex-prod"},
			where:       "Google Cloud KMS key orgkms-cmk in key ring orgkms of project globex-prod"},
	}
	for _, tc := range cases {
		t.Run(tc.cloud, func(t *testing.T) {
			if tc.c == nil {
				t.Fatalf("the server offers no %s cloud", tc.cloud)
			}
			if tc.cloud == "aws" {
				// The customer creates the role trusting orgkms with acme's
				// external ID (Step 1, in their IAM console).
				s.sts.AllowRole(cloudsRole, s.awsC.ExternalID("acme"))
			}
			admin := b.newTab(t, tc.org+" admin")
			security := s.url + "/console/orgs/" + tc.org + "/security"
			admin.signIn(t, &browserStack{url: s.url}, "admin@"+tc.org+".example", cloudsAdminPass)
			admin.open(t, security)
			if !evalJS[bool](t, admin, `document.querySelector("input#cmk-enable").checked`) {
				admin.do(t, "turning the switch on", chromedp.Click(chromedp.CSS("input#cmk-enable")))
			}
			if !admin.present(t, "form#cloud-choice") {
				admin.click(t, "form:has(input#cmk-enable) [type=submit]")
			}
			// Two clouds are offered: the admin chooses.
			if !admin.present(t, "form#cloud-choice") {
				t.Fatalf("two clouds offered, but no form#cloud-choice\n%s", admin.describe())
			}
			admin.do(t, "choosing "+tc.cloud, chromedp.Click(chromedp.CSS("input#cloud-"+tc.cloud)))
			admin.click(t, "button#cloud-apply")

			// Step 1 is the cloud's grant, with the values to copy, and no
			// consent button.
			a := tc.c.Authorization(tc.org)
			plain := func(s string) string { return oneLine(strings.ReplaceAll(cmk.Vars{"org": tc.org}.Expand(s), "`", "")) }
			if got := oneLine(admin.text(t, "#authorize-instructions")); got != plain(a.Instructions) {
				t.Errorf("#authorize-instructions = %q, want the cloud's %q", got, plain(a.Instructions))
			}
			if got := oneLine(admin.text(t, "#authorize-access")); got != plain(a.Access) {
				t.Errorf("#authorize-access = %q, want the cloud's %q", got, plain(a.Access))
			}
			for name, want := range tc.values {
				if got := admin.text(t, "code[data-value="+name+"]"); got != want {
					t.Errorf("Step 1 value %s = %q, want %q", name, got, want)
				}
			}
			if admin.present(t, "form#authorize-form") || admin.present(t, "button#authorize") {
				t.Errorf("a grant cloud shows the consent form")
			}
			if h := admin.text(t, "#step1-h"); !strings.Contains(h, "Grant orgkms access in "+a.Service) {
				t.Errorf("#step1-h = %q, want the grant step", h)
			}
			// Step 2: one input per field of the cloud.
			type input struct {
				Name  string `json:"name"`
				Label string `json:"label"`
			}
			got := evalJS[[]input](t, admin, `[...document.querySelectorAll("form#configure input[type=text]")].map(i => ({
				name: i.name, label: (document.querySelector("label[for='" + i.id + "']") || {}).innerText || ""}))`)
			fields := tc.c.Fields()
			if len(got) != len(fields) {
				t.Fatalf("form#configure has inputs %+v, want the %d fields of %s", got, len(fields), tc.cloud)
			}
			for i, f := range fields {
				if got[i].Name != f.Name || !strings.HasPrefix(oneLine(got[i].Label), f.Label) {
					t.Errorf("input %d = %+v, want field %s labelled %q", i, got[i], f.Name, f.Label)
				}
			}

			// A wrong field is named beside its input, with what to do.
			for id, v := range tc.good {
				setValue(t, admin, "input#"+id, v)
			}
			wrongID := strings.ReplaceAll(tc.wrongField, "_", "-")
			setValue(t, admin, "input#"+wrongID, tc.wrongValue)
			admin.load(t, "testing a wrong "+tc.wrongField, 0, chromedp.Click(chromedp.CSS("button#test")))
			if e := admin.text(t, "#"+wrongID+"-error"); e == "" {
				t.Errorf("no #%s-error for a wrong %s", wrongID, tc.wrongField)
			} else {
				t.Logf("%s %q: %s", tc.wrongField, tc.wrongValue, e)
			}
			setValue(t, admin, "input#"+wrongID, tc.good[wrongID])

			// Test Managed Key with orgkms' decrypt permission missing: the
			// cloud's table, the failure's remedy in its console's words.
			tc.deny()
			admin.click(t, "button#test")
			rows := admin.checks(t)
			specs := tc.c.Wording().Checks
			names := map[string]string{}
			for _, c := range specs {
				names[c.ID] = c.Name
			}
			failed := false
			for _, r := range rows {
				if names[r.ID] == "" || !strings.HasPrefix(r.Text, names[r.ID]) {
					t.Errorf("row %s %q is not a check of the %s table", r.ID, r.Text, tc.cloud)
				}
				if r.ID == tc.failCheck {
					failed = true
					if r.Status != "fail" || !strings.Contains(r.Text, tc.failRemedy) {
						t.Errorf("check %s = %s %q, want a failure whose remedy says %q", r.ID, r.Status, r.Text, tc.failRemedy)
					}
				}
			}
			if !failed {
				t.Errorf("no row for check %s in %+v", tc.failCheck, rows)
			}
			sh.take(t, admin, "security-"+tc.cloud+"-test-failed.png")
			tc.allow()
			admin.click(t, "button#test")
			rows = admin.checks(t)
			if len(rows) != len(specs) {
				t.Errorf("Test Managed Key shows %d rows, the %s table has %d checks", len(rows), tc.cloud, len(specs))
			}
			for _, r := range rows {
				if r.Status != "pass" && r.Status != "warn" {
					t.Errorf("check %s: %s (%s), want pass or warn", r.ID, r.Status, r.Text)
				}
			}
			if c := admin.text(t, "#consent"); !strings.Contains(c, a.TenantLabel) || !strings.Contains(c, "recorded") {
				t.Errorf("#consent = %q, want the recorded %s", c, a.TenantLabel)
			}
			sh.take(t, admin, "security-"+tc.cloud+"-test.png")

			// Save: active; the status names the cloud and its key.
			admin.click(t, "button#save")
			admin.waitFor(t, "activation", "#cmk-state", func(e elem) bool { return hasWord(e.Text, "active") }, security)
			if st := s.status(t, tc.org); st.State != cmk.StateActive || st.Cloud != tc.cloud {
				t.Fatalf("after Save: state %s cloud %s, want active on %s", st.State, st.Cloud, tc.cloud)
			}
			admin.open(t, security)
			if c := admin.text(t, "#cmk-cloud"); c != tc.c.DisplayName() {
				t.Errorf("#cmk-cloud = %q, want %s", c, tc.c.DisplayName())
			}
			facts := admin.text(t, "section[aria-labelledby=cmk-h] dl.facts")
			for _, f := range append(tc.facts, tc.where) {
				if !strings.Contains(facts, f) {
					t.Errorf("the status does not show %q:\n%s", f, facts)
				}
			}
			if admin.present(t, "form#cloud-choice") {
				t.Errorf("the cloud can still be chosen with a key in use")
			}
			sh.take(t, admin, "security-"+tc.cloud+"-active.png")

			// The customer disables the key: the cloud's reason and remedy.
			tc.disable()
			e := admin.waitFor(t, "the revoked banner", "#banner.banner-revoked", func(e elem) bool { return e.Found }, security)
			st := s.status(t, tc.org)
			if st.State != cmk.StateRevoked || !strings.Contains(st.Reason, tc.reasonWords) {
				t.Fatalf("state %s reason %q, want revoked with a reason saying %q", st.State, st.Reason, tc.reasonWords)
			}
			if !strings.Contains(e.Text, oneLine(st.Reason)) {
				t.Errorf("#banner is %q, want the reason %q", e.Text, st.Reason)
			}
			sh.take(t, admin, "security-"+tc.cloud+"-revoked.png")
			tc.enable()
			admin.waitFor(t, "the banner to go", "#banner.banner-revoked", func(e elem) bool { return !e.Found }, security)
			if st := s.status(t, tc.org); st.State != cmk.StateActive {
				t.Errorf("after enabling the key again: state %s, want active", st.State)
			}
		})
	}
}

// setValue sets the value of the input sel, as pasting it would.
func setValue(t *testing.T, tb *tab, sel, v string) {
	t.Helper()
	q, _ := json.Marshal(sel)
	val, _ := json.Marshal(v)
	if !evalJS[bool](t, tb, fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return false; e.value = %s; return true; })()`, q, val)) {
		t.Fatalf("%s: no input %s\n%s", tb.name, sel, tb.describe())
	}
}
