package azureemu

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// sdkClient builds the production-style client pair: ClientSecretCredential
// against the emulator authority and azkeys with challenge resource
// verification on.
func sdkClient(t *testing.T, e *Emulator, tenant, clientID, secret, vaultURL string) *azkeys.Client {
	t.Helper()
	hc := e.HTTPClient()
	cred, err := azidentity.NewClientSecretCredential(tenant, clientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: hc,
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.URL() + "/"},
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := azkeys.NewClient(vaultURL, cred, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func innerCode(t *testing.T, err error) (status int, code, inner string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *azcore.ResponseError", err)
	}
	body, perr := runtime.Payload(re.RawResponse)
	if perr != nil {
		t.Fatal(perr)
	}
	var env struct {
		Error struct {
			Code       string `json:"code"`
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	_ = jsonUnmarshal(body, &env)
	return re.StatusCode, re.ErrorCode, env.Error.InnerError.Code
}

func TestSDK(t *testing.T) {
	e := startEmu(t, Config{})
	w := newWorld(t, e)
	ctx := t.Context()
	c := sdkClient(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://demo.vault.azure.net")
	alg := to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256)

	got, err := c.GetKey(ctx, "k1", "", nil)
	if err != nil {
		t.Fatalf("GetKey: %v", err)
	}
	if got.Key.KID.Name() != "k1" || got.Key.KID.Version() != w.key.Version || !*got.Attributes.Enabled || *got.Attributes.RecoveryLevel != "Recoverable+Purgeable" {
		t.Errorf("GetKey = %s %+v", *got.Key.KID, got.Attributes)
	}

	dek := make([]byte, 32)
	_, _ = rand.Read(dek)
	wr, err := c.WrapKey(ctx, "k1", "", azkeys.KeyOperationParameters{Algorithm: alg, Value: dek}, nil)
	if err != nil {
		t.Fatalf("WrapKey: %v", err)
	}
	v1 := wr.KID.Version()
	if v1 != w.key.Version || len(wr.Result) != 256 {
		t.Errorf("WrapKey kid %s, %d bytes", *wr.KID, len(wr.Result))
	}
	uw, err := c.UnwrapKey(ctx, "k1", v1, azkeys.KeyOperationParameters{Algorithm: alg, Value: wr.Result}, nil)
	if err != nil || !bytes.Equal(uw.Result, dek) {
		t.Fatalf("UnwrapKey: %v", err)
	}

	// Rotation: the old version still unwraps; the new one does not.
	rot, err := c.RotateKey(ctx, "k1", nil)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if rot.Key.KID.Version() == v1 {
		t.Fatal("RotateKey kept the version")
	}
	if _, err := c.UnwrapKey(ctx, "k1", v1, azkeys.KeyOperationParameters{Algorithm: alg, Value: wr.Result}, nil); err != nil {
		t.Errorf("UnwrapKey(old version) after rotate: %v", err)
	}
	if _, err := c.UnwrapKey(ctx, "k1", "", azkeys.KeyOperationParameters{Algorithm: alg, Value: wr.Result}, nil); err == nil {
		t.Error("UnwrapKey(latest) of an old-version blob succeeded")
	}
	n := 0
	for pager := c.NewListKeyPropertiesVersionsPager("k1", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 2 {
		t.Errorf("versions = %d, want 2", n)
	}

	// Disabled → 403 KeyDisabled.
	if _, err := c.UpdateKey(ctx, "k1", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	_, err = c.UnwrapKey(ctx, "k1", v1, azkeys.KeyOperationParameters{Algorithm: alg, Value: wr.Result}, nil)
	if st, code, inner := innerCode(t, err); st != 403 || code != "Forbidden" || inner != "KeyDisabled" {
		t.Errorf("disabled: %d %s %s", st, code, inner)
	}
	must[KeyInfo](t)(e.UpdateKey("demo", "k1", v1, boolPtr(true), nil, nil))

	// Permission removed → 403 ForbiddenByPolicy.
	must[struct{}](t)(struct{}{}, e.SetPolicy("demo", w.sp.ObjectID, []string{"get", "wrapKey"}))
	_, err = c.UnwrapKey(ctx, "k1", v1, azkeys.KeyOperationParameters{Algorithm: alg, Value: wr.Result}, nil)
	if st, code, inner := innerCode(t, err); st != 403 || code != "Forbidden" || inner != "ForbiddenByPolicy" {
		t.Errorf("no permission: %d %s %s", st, code, inner)
	}

	// Consent revoked: a fresh credential cannot get a token; the cached
	// token of the existing client is rejected at once.
	must[struct{}](t)(struct{}{}, e.RevokeConsent(w.customer.ID, w.app.ClientID))
	fresh := sdkClient(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://demo.vault.azure.net")
	_, err = fresh.GetKey(ctx, "k1", "", nil)
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || !strings.Contains(err.Error(), "AADSTS700016") {
		t.Errorf("fresh client after revoke: %v", err)
	}
	_, err = c.GetKey(ctx, "k1", "", nil)
	if st, _, _ := innerCode(t, err); st != 401 {
		t.Errorf("cached token after revoke: status %d", st)
	}

	// A vault in another tenant: the credential refuses the challenge's
	// tenant; with the vault tenant's credential but the wrong vault, 401.
	other := must[Tenant](t)(e.CreateTenant("northwind"))
	must[Vault](t)(e.CreateVault(other.ID, "nwkv", VaultOptions{}))
	must[ServicePrincipal](t)(e.GrantConsent(w.customer.ID, w.app.ClientID))
	wrong := sdkClient(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://nwkv.vault.azure.net")
	if _, err := wrong.GetKey(ctx, "k1", "", nil); err == nil || !strings.Contains(err.Error(), "AdditionallyAllowedTenants") {
		t.Errorf("wrong-tenant vault: %v", err)
	}
	// A token of the wrong tenant sent anyway → 401 AKV10032.
	tok := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
	r := send(t, e.HTTPClient(), http.MethodGet, "https://nwkv.vault.azure.net/keys/k1"+apiV, tok, nil)
	if _, _, msg := r.errCodes(t); r.status != 401 || !strings.HasPrefix(msg, "AKV10032") {
		t.Errorf("wrong-tenant token: %d %s", r.status, msg)
	}
}

func azkeysParams(v []byte) azkeys.KeyOperationParameters {
	return azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: v}
}
