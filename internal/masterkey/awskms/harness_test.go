package awskms_test

import (
	"net/http/httptest"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/orgkms/orgkms/internal/awsemu"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
)

// TestMain runs the tests in a private network namespace with local-kms
// on loopback (awsemu.Main); they fail, never skip, without local-kms.
func TestMain(m *testing.M) {
	// No shared AWS files of the machine may change the SDK's behaviour.
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	awsemu.Main(m)
}

const (
	platformAKID = "AKIDORGKMSPLATFORM"
	roleARN      = "arn:aws:iam::" + awsemu.Account + ":role/orgkms-cmk"
	externalID   = "orgkms-org-acme-5f1c2a"
)

// env is one test's emulated AWS: local-kms behind the awsemu proxy, the
// STS stand-in, and an admin client for the customer's console actions.
type env struct {
	kms            *awsemu.KMS
	sts            *awsemu.STS
	kmsURL, stsURL string
	admin          *kms.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{kms: awsemu.NewKMS(awsemu.LocalKMSURL(t)), sts: awsemu.NewSTS(platformAKID)}
	e.kms.STS = e.sts
	e.sts.AllowRole(roleARN, externalID)
	ks := httptest.NewServer(e.kms)
	t.Cleanup(ks.Close)
	ss := httptest.NewServer(e.sts)
	t.Cleanup(ss.Close)
	e.kmsURL, e.stsURL = ks.URL, ss.URL
	e.admin = kms.New(kms.Options{Region: awsemu.Region, BaseEndpoint: aws.String(ks.URL),
		Credentials: credentials.NewStaticCredentialsProvider(platformAKID, "platform-secret", "")})
	return e
}

func (e *env) config() awskms.Config {
	return awskms.Config{AllowedRegions: []string{awsemu.Region}, Region: awsemu.Region,
		Credentials: credentials.NewStaticCredentialsProvider(platformAKID, "platform-secret", ""),
		KMSEndpoint: e.kmsURL, STSEndpoint: e.stsURL, MaxAttempts: 1}
}

func (e *env) provider(t *testing.T, mod ...func(*awskms.Config)) *awskms.Provider {
	t.Helper()
	c := e.config()
	for _, f := range mod {
		f(&c)
	}
	p, err := awskms.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// newKey creates a symmetric key in local-kms and returns its ref, used
// through the customer's role.
func (e *env) newKey(t *testing.T) masterkey.Ref {
	t.Helper()
	out, err := e.admin.CreateKey(t.Context(), &kms.CreateKeyInput{Description: aws.String("orgkms test CMK")})
	if err != nil {
		t.Fatal(err)
	}
	k, err := awskms.ParseKey(aws.ToString(out.KeyMetadata.Arn), roleARN, externalID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.Ref()
}

func arnOf(t *testing.T, ref masterkey.Ref) string {
	t.Helper()
	k, err := awskms.KeyOf(ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.ARN.String()
}
