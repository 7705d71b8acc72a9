//go:build !no_gcpkms

package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/awsemu"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/server"
)

// The platform's AWS credentials and the values of the CLI clouds test.
const (
	cliAWSAKID    = "AKIDORGKMSPLATFORM"
	cliAWSAccount = "444455556666"
	cliAWSRole    = "arn:aws:iam::" + awsemu.Account + ":role/orgkms-cmk"
	cliGCPKey     = "projects/globex-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/orgkms-cmk"
	cliGCPSA      = "orgkms@orgkms-platform.iam.gserviceaccount.com"
)

// cliWaitTimeout bounds every wait for a state (never asserted as a time).
const cliWaitTimeout = 2 * time.Minute

// TestCMKCLIOnClouds runs an orgkms server offering AWS KMS
// (local-kms behind the awsemu proxy, the STS stand-in) and Google Cloud KMS
// (the in-process fake), and drives the whole customer managed key
// lifecycle of each cloud with the orgkms CLI as real processes: cmk
// clouds, authorize (the grant instructions), configure by the cloud's
// flags and fields (a wrong field named, with what to do), test, enable,
// status in text and JSON, a rotation followed, the key disabled (revoked,
// the cloud's reason; data refused) and enabled again, disable; on Google
// a destroyed version, lost, and fallback. It logs the time from rotation
// to re-wrap and from disable to refusal for each cloud (1 s probes). It
// runs in a private network namespace (local-kms binds every interface).
func TestCMKCLIOnClouds(t *testing.T) {
	if !awsemu.Isolated(t) {
		return
	}
	ctx := t.Context()
	kmsProxy, sts := awsemu.NewKMS(awsemu.LocalKMSURL(t)), awsemu.NewSTS(cliAWSAKID)
	kmsProxy.STS = sts
	ks := httptest.NewServer(kmsProxy)
	t.Cleanup(ks.Close)
	ss := httptest.NewServer(sts)
	t.Cleanup(ss.Close)
	awsAdmin := kms.New(kms.Options{Region: awsemu.Region, BaseEndpoint: aws.String(ks.URL),
		Credentials: credentials.NewStaticCredentialsProvider(cliAWSAKID, "platform-secret", "")})
	out, err := awsAdmin.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("acme's orgkms CMK")})
	if err != nil {
		t.Fatal(err)
	}
	keyARN := aws.ToString(out.KeyMetadata.Arn)
	fake := gcpkmsemu.New()
	gaddr, err := fake.Start(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.CreateKey(cliGCPKey, gcpkmsemu.KeyOptions{Labels: map[string]string{"orgkms-org": "globex"}}); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	hs := httptest.NewUnstartedServer(mux)
	t.Cleanup(hs.Close)
	url := "http://" + hs.Listener.Addr().String()
	cfg := config.Config{DataDir: t.TempDir(), PublicURL: url}
	cfg.CMK.Clouds, cfg.CMK.ProbeInterval = []string{"aws", "gcp"}, config.Duration(time.Second)
	// A destroyed version is lost once two probes a second apart agree.
	cfg.CMK.PurgeConfirmChecks, cfg.CMK.PurgeConfirmAfter = 2, config.Duration(time.Second)
	cfg.CMK.AWS = config.AWS{Enabled: true, Region: awsemu.Region, AllowedRegions: []string{awsemu.Region}, CredentialsSource: "env",
		KMSEndpoint: ks.URL, STSEndpoint: ss.URL, MaxAttempts: 1, AccountID: cliAWSAccount, ExternalIDSecret: "a-secret-of-at-least-32-bytes-for-external-ids"}
	cfg.CMK.GCP = config.GCP{Enabled: true, Endpoint: gaddr, ServiceAccount: cliGCPSA}
	env := map[string]string{"AWS_ACCESS_KEY_ID": cliAWSAKID, "AWS_SECRET_ACCESS_KEY": "platform-secret"}
	srv, err := server.Open(ctx, cfg, server.Options{Logger: slog.New(slog.DiscardHandler), Migrate: true, Getenv: func(k string) string { return env[k] },
		JobPoll: 100 * time.Millisecond, GCPInsecure: true}) // the Cloud KMS fake speaks plaintext gRPC
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.Start(context.Background())
	mux.Handle("/", srv.Handler)
	hs.Start()
	bin := buildOrgkms(t, t.TempDir())

	// cli runs the orgkms CLI with token; it fails t unless the exit
	// status is 0 exactly when ok.
	cli := func(token string, ok bool, args ...string) (stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(crashEnv(), "ORGKMS_ADDR="+url, "ORGKMS_TOKEN="+token)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if (err == nil) != ok {
			t.Fatalf("orgkms %s: %v, want success %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, ok, o.String(), e.String())
		}
		return o.String(), e.String()
	}
	admin := func(org string) (sec, svc string) {
		t.Helper()
		if _, err := srv.Keys.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
		_, sec, err := srv.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: "sec", OrgID: org, Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}})
		if err != nil {
			t.Fatal(err)
		}
		_, svc, err = srv.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: "svc", OrgID: org, Roles: []auth.Role{auth.RoleService}})
		if err != nil {
			t.Fatal(err)
		}
		return sec, svc
	}
	statusOf := func(token, org string) client.CMKStatus {
		t.Helper()
		out, _ := cli(token, true, "cmk", "status", "--org", org, "--format", "json")
		var st client.CMKStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("cmk status --format json: %v\n%s", err, out)
		}
		return st
	}
	waitState := func(token, org, what string, ok func(client.CMKStatus) bool) (client.CMKStatus, time.Duration) {
		t.Helper()
		start := time.Now()
		for {
			st := statusOf(token, org)
			if ok(st) {
				return st, time.Since(start)
			}
			if time.Since(start) > cliWaitTimeout {
				t.Fatalf("%s: not within %s; status %+v", what, cliWaitTimeout, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	has := func(what, s string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(s, w) {
				t.Errorf("%s does not say %q:\n%s", what, w, s)
			}
		}
	}
	encrypt := func(svc, org string, ok bool) string {
		t.Helper()
		cmd := exec.Command(bin, "encrypt", "--org", org)
		cmd.Env = append(crashEnv(), "ORGKMS_ADDR="+url, "ORGKMS_TOKEN="+svc)
		cmd.Stdin = strings.NewReader("hello")
		out, err := cmd.CombinedOutput()
		if (err == nil) != ok {
			t.Fatalf("orgkms encrypt --org %s: %v, want success %v\n%s", org, err, ok, out)
		}
		return string(out)
	}

	t.Run("aws", func(t *testing.T) {
		sec, svc := admin("acme")
		o, _ := cli(sec, true, "cmk", "clouds", "--org", "acme")
		has("cmk clouds", o, "aws: AWS KMS (default)", "authorize (grant)", cliAWSAccount, "key_arn", "role_arn", "gcp: Google Cloud KMS")
		// Step 1 is a grant: authorize --cloud aws prints what to do and
		// the values to copy (the org's external ID).
		o, _ = cli(sec, true, "cmk", "authorize", "--org", "acme", "--cloud", "aws")
		has("cmk authorize --cloud aws", o, "Create role", cliAWSAccount, "orgkms cmk configure --org acme --cloud aws --key-arn")
		o, _ = cli(sec, true, "cmk", "authorize", "--org", "acme", "--cloud", "aws", "--format", "json")
		has("cmk authorize --cloud aws --format json", o, `"method": "grant"`, `"external_id"`)
		var auth client.CMKAuthorizeResponse
		if err := json.Unmarshal([]byte(o), &auth); err != nil || auth.Authorization == nil {
			t.Fatalf("authorize json: %v\n%s", err, o)
		}
		ext := ""
		for _, v := range auth.Authorization.Values {
			if v.Name == "external_id" {
				ext = v.Value
			}
		}
		if ext == "" {
			t.Fatalf("authorize gives no external ID: %+v", auth.Authorization)
		}
		// The customer creates the role trusting orgkms with that ID.
		sts.AllowRole(cliAWSRole, ext)

		// A wrong field is named, with what to do.
		_, e := cli(sec, false, "cmk", "configure", "--org", "acme", "--cloud", "aws", "--key-arn", keyARN, "--role-arn", "orgkms-cmk")
		has("configure with a wrong role ARN", e, "role_arn", "arn:aws:iam::ACCOUNT:role/NAME")
		_, e = cli(sec, false, "cmk", "configure", "--org", "acme", "--cloud", "aws", "--key-arn", "arn:aws:kms:us-east-1:"+awsemu.Account+":key/1234abcd-12ab-34cd-56ef-1234567890ab", "--role-arn", cliAWSRole)
		has("configure with a key in another Region", e, "us-east-1")
		cli(sec, true, "cmk", "configure", "--org", "acme", "--cloud", "aws", "--key-arn", keyARN, "--role-arn", cliAWSRole)

		// Test Managed Key: the AWS table, with its remedies.
		kmsProxy.Deny(keyARN, "kms:Decrypt")
		o, _ = cli(sec, false, "cmk", "test", "--org", "acme")
		has("cmk test without kms:Decrypt", o, "Encrypt and decrypt round trip", "Key policy → Edit")
		kmsProxy.Allow(keyARN)
		o, _ = cli(sec, true, "cmk", "test", "--org", "acme")
		has("cmk test", o, "Role assumed", "Key spec and usage", "Key rotation")
		o, _ = cli(sec, true, "cmk", "test", "--org", "acme", "--format", "json")
		has("cmk test --format json", o, `"ok": true`, `"id": "rotation"`)

		cli(sec, true, "cmk", "enable", "--org", "acme")
		o, _ = cli(sec, true, "cmk", "status", "--org", "acme")
		has("cmk status", o, "aws", keyARN, cliAWSRole, "active")
		st := statusOf(sec, "acme")
		if st.State != "active" || st.Cloud != "aws" || st.Fields["key_arn"] != keyARN || st.Fields["role_arn"] != cliAWSRole {
			t.Fatalf("status after enable: %+v", st)
		}
		encrypt(svc, "acme", true)

		// A rotation on demand is followed.
		if _, err := awsAdmin.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyARN)}); err != nil {
			t.Fatal(err)
		}
		materials := kmsProxy.MaterialIDs(keyARN)
		_, took := waitState(sec, "acme", "the rotation followed", func(s client.CMKStatus) bool {
			return s.State == "active" && s.CurrentVersion == materials[len(materials)-1]
		})
		t.Logf("aws: rotation to re-wrap %s (probe interval 1s)", took.Round(time.Millisecond))

		// Disabled: revoked in AWS's words, data refused; enabled again.
		if _, err := awsAdmin.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
			t.Fatal(err)
		}
		st, took = waitState(sec, "acme", "revoked", func(s client.CMKStatus) bool { return s.State == "revoked" })
		t.Logf("aws: disable to refusal %s (probe interval 1s)", took.Round(time.Millisecond))
		has("the revocation reason", st.Reason, "Key actions → Enable")
		has("encrypt while revoked", encrypt(svc, "acme", false), "orgkms: error:", "disabled")
		o, _ = cli(sec, true, "cmk", "status", "--org", "acme")
		has("cmk status while revoked", o, "revoked", "Key actions → Enable")
		if _, err := awsAdmin.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
			t.Fatal(err)
		}
		waitState(sec, "acme", "active again", func(s client.CMKStatus) bool { return s.State == "active" })
		encrypt(svc, "acme", true)

		// Back to the platform key.
		cli(sec, true, "cmk", "disable", "--org", "acme")
		if st := statusOf(sec, "acme"); st.State != "authorized" || st.Provider != "local" {
			t.Errorf("after cmk disable: %+v", st)
		}
		encrypt(svc, "acme", true)
	})

	t.Run("gcp", func(t *testing.T) {
		sec, svc := admin("globex")
		o, _ := cli(sec, true, "cmk", "authorize", "--org", "globex", "--cloud", "gcp")
		has("cmk authorize --cloud gcp", o, cliGCPSA, "roles/cloudkms.cryptoKeyEncrypterDecrypter", "orgkms cmk configure --org globex --cloud gcp --field key_name=")
		_, e := cli(sec, false, "cmk", "configure", "--org", "globex", "--cloud", "gcp", "--field", "key_name=orgkms-cmk")
		has("configure with a bare key name", e, "key_name", "Copy resource name")
		_, e = cli(sec, false, "cmk", "configure", "--org", "globex", "--cloud", "gcp", "--field", "key_name="+cliGCPKey, "--field", "key_arn=x")
		has("configure with a field of another cloud", e, "key_arn", "give key_name")
		cli(sec, true, "cmk", "configure", "--org", "globex", "--cloud", "gcp", "--field", "key_name="+cliGCPKey)

		if err := fake.Revoke(cliGCPKey, gcpkmsemu.Anonymous, gcpkmsemu.PermDecrypt); err != nil {
			t.Fatal(err)
		}
		o, _ = cli(sec, false, "cmk", "test", "--org", "globex")
		has("cmk test without decrypt", o, "Encrypt and decrypt round trip", "Cloud KMS CryptoKey Encrypter/Decrypter")
		if err := fake.Grant(cliGCPKey, gcpkmsemu.Anonymous, gcpkmsemu.PermDecrypt); err != nil {
			t.Fatal(err)
		}
		o, _ = cli(sec, true, "cmk", "test", "--org", "globex")
		has("cmk test", o, "Key labeled for this org", "Destruction schedule")

		cli(sec, true, "cmk", "enable", "--org", "globex")
		o, _ = cli(sec, true, "cmk", "status", "--org", "globex")
		has("cmk status", o, "gcp", cliGCPKey, "globex-prod", "active")
		st := statusOf(sec, "globex")
		if st.State != "active" || st.Cloud != "gcp" || st.CurrentVersion != "1" || st.Fields["key_name"] != cliGCPKey {
			t.Fatalf("status after enable: %+v", st)
		}
		encrypt(svc, "globex", true)

		v2, err := fake.Rotate(cliGCPKey)
		if err != nil {
			t.Fatal(err)
		}
		_, took := waitState(sec, "globex", "the rotation followed", func(s client.CMKStatus) bool { return s.State == "active" && s.CurrentVersion == v2 })
		t.Logf("gcp: rotation to re-wrap %s (probe interval 1s)", took.Round(time.Millisecond))

		if err := fake.SetState(cliGCPKey, v2, kmspb.CryptoKeyVersion_DISABLED); err != nil {
			t.Fatal(err)
		}
		st, took = waitState(sec, "globex", "revoked", func(s client.CMKStatus) bool { return s.State == "revoked" })
		t.Logf("gcp: disable to refusal %s (probe interval 1s)", took.Round(time.Millisecond))
		has("the revocation reason", st.Reason, "Versions → Enable")
		has("encrypt while revoked", encrypt(svc, "globex", false), "orgkms: error:", "Enable")
		if err := fake.SetState(cliGCPKey, v2, kmspb.CryptoKeyVersion_ENABLED); err != nil {
			t.Fatal(err)
		}
		waitState(sec, "globex", "active again", func(s client.CMKStatus) bool { return s.State == "active" })

		// Scheduled for destruction: revoked with the destroy date.
		if err := fake.SetState(cliGCPKey, v2, kmspb.CryptoKeyVersion_DESTROY_SCHEDULED); err != nil {
			t.Fatal(err)
		}
		st, _ = waitState(sec, "globex", "revoked (destroy scheduled)", func(s client.CMKStatus) bool { return s.State == "revoked" })
		has("the destroy-scheduled reason", st.Reason, "scheduled for destruction on 20", "Restore")
		if err := fake.SetState(cliGCPKey, v2, kmspb.CryptoKeyVersion_DISABLED); err != nil { // Restore leaves it DISABLED
			t.Fatal(err)
		}
		if err := fake.SetState(cliGCPKey, v2, kmspb.CryptoKeyVersion_ENABLED); err != nil {
			t.Fatal(err)
		}
		waitState(sec, "globex", "active after restore", func(s client.CMKStatus) bool { return s.State == "active" })

		// Destroyed: lost; fallback gives the org a new platform root key.
		if err := fake.SetState(cliGCPKey, v2, kmspb.CryptoKeyVersion_DESTROYED); err != nil {
			t.Fatal(err)
		}
		waitState(sec, "globex", "lost", func(s client.CMKStatus) bool { return s.State == "lost" })
		_, e = cli(sec, false, "cmk", "fallback", "--org", "globex")
		has("fallback without confirmation", e, "--confirm-data-loss")
		cli(sec, true, "cmk", "fallback", "--org", "globex", "--confirm-data-loss")
		if st := statusOf(sec, "globex"); st.State != "platform" || st.DataLostAt == nil {
			t.Errorf("after fallback: %+v", st)
		}
		encrypt(svc, "globex", true)
	})
}
