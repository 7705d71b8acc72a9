package azureemu

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The control API mirrors the in-process control methods as JSON over HTTP
// under /_emulator/ on the non-vault host. Every request needs
// "Authorization: Bearer <admin token>" (Dir/admin-token).

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeAPIError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, ErrConflict):
		status, code = http.StatusConflict, "conflict"
	case errors.Is(err, ErrInvalid):
		status, code = http.StatusBadRequest, "invalid_argument"
	case errors.Is(err, ErrPurgeProtected):
		status, code = http.StatusForbidden, "purge_protected"
	}
	writeJSON(w, status, map[string]any{"error": apiError{Code: code, Message: err.Error()}})
}

type createTenantIn struct {
	Name string `json:"name"`
}

type registerAppIn struct {
	HomeTenant string `json:"home_tenant"`
	AppRegistration
}

type createVaultIn struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	VaultOptions
}

type createKeyIn struct {
	Name string `json:"name"`
	KeyOptions
}

type updateKeyIn struct {
	Version string            `json:"version"`
	Enabled *bool             `json:"enabled"`
	NBF     *time.Time        `json:"nbf"`
	EXP     *time.Time        `json:"exp"`
	Tags    map[string]string `json:"tags"` // nil: unchanged
}

type policyIn struct {
	Permissions []string `json:"permissions"`
}

type demoIn struct {
	RedirectURIs []string `json:"redirect_uris"`
}

func (e *Emulator) controlMux() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, status int, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			out, err := fn(r)
			if err != nil {
				writeAPIError(w, err)
				return
			}
			if out == nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			writeJSON(w, status, out)
		})
	}
	decode := func(r *http.Request, v any) error {
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("request body: %v: %w", err, ErrInvalid)
		}
		return nil
	}
	handle("GET /_emulator/tenants", http.StatusOK, func(r *http.Request) (any, error) { return e.Tenants(), nil })
	handle("POST /_emulator/tenants", http.StatusCreated, func(r *http.Request) (any, error) {
		var in createTenantIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return e.CreateTenant(in.Name)
	})
	handle("POST /_emulator/apps", http.StatusCreated, func(r *http.Request) (any, error) {
		var in registerAppIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return e.RegisterApp(in.HomeTenant, in.AppRegistration)
	})
	handle("GET /_emulator/apps/{client}", http.StatusOK, func(r *http.Request) (any, error) {
		return e.App(r.PathValue("client"))
	})
	handle("PUT /_emulator/tenants/{tenant}/consents/{client}", http.StatusOK, func(r *http.Request) (any, error) {
		return e.GrantConsent(r.PathValue("tenant"), r.PathValue("client"))
	})
	handle("DELETE /_emulator/tenants/{tenant}/consents/{client}", 0, func(r *http.Request) (any, error) {
		return nil, e.RevokeConsent(r.PathValue("tenant"), r.PathValue("client"))
	})
	handle("POST /_emulator/tenants/{tenant}/consents/{client}/revoke-tokens", 0, func(r *http.Request) (any, error) {
		return nil, e.RevokeTokens(r.PathValue("tenant"), r.PathValue("client"))
	})
	handle("POST /_emulator/vaults", http.StatusCreated, func(r *http.Request) (any, error) {
		var in createVaultIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return e.CreateVault(in.Tenant, in.Name, in.VaultOptions)
	})
	handle("GET /_emulator/vaults/{vault}", http.StatusOK, func(r *http.Request) (any, error) {
		return e.Vault(r.PathValue("vault"))
	})
	handle("POST /_emulator/vaults/{vault}/keys", http.StatusCreated, func(r *http.Request) (any, error) {
		var in createKeyIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return e.CreateKey(r.PathValue("vault"), in.Name, in.KeyOptions)
	})
	handle("GET /_emulator/vaults/{vault}/keys/{key}", http.StatusOK, func(r *http.Request) (any, error) {
		return e.GetKey(r.PathValue("vault"), r.PathValue("key"))
	})
	handle("PATCH /_emulator/vaults/{vault}/keys/{key}", http.StatusOK, func(r *http.Request) (any, error) {
		var in updateKeyIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		if in.Tags != nil {
			if _, err := e.SetKeyTags(r.PathValue("vault"), r.PathValue("key"), in.Version, in.Tags); err != nil {
				return nil, err
			}
		}
		return e.UpdateKey(r.PathValue("vault"), r.PathValue("key"), in.Version, in.Enabled, in.NBF, in.EXP)
	})
	handle("DELETE /_emulator/vaults/{vault}/keys/{key}", http.StatusOK, func(r *http.Request) (any, error) {
		return e.DeleteKey(r.PathValue("vault"), r.PathValue("key"))
	})
	handle("POST /_emulator/vaults/{vault}/keys/{key}/rotate", http.StatusOK, func(r *http.Request) (any, error) {
		return e.RotateKey(r.PathValue("vault"), r.PathValue("key"))
	})
	handle("POST /_emulator/vaults/{vault}/keys/{key}/recover", http.StatusOK, func(r *http.Request) (any, error) {
		return e.RecoverKey(r.PathValue("vault"), r.PathValue("key"))
	})
	handle("POST /_emulator/vaults/{vault}/keys/{key}/purge", 0, func(r *http.Request) (any, error) {
		return nil, e.PurgeKey(r.PathValue("vault"), r.PathValue("key"))
	})
	handle("GET /_emulator/vaults/{vault}/policies", http.StatusOK, func(r *http.Request) (any, error) {
		return e.Policies(r.PathValue("vault"))
	})
	handle("PUT /_emulator/vaults/{vault}/policies/{principal}", 0, func(r *http.Request) (any, error) {
		var in policyIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, e.SetPolicy(r.PathValue("vault"), r.PathValue("principal"), in.Permissions)
	})
	handle("DELETE /_emulator/vaults/{vault}/policies/{principal}", 0, func(r *http.Request) (any, error) {
		return nil, e.RemovePolicy(r.PathValue("vault"), r.PathValue("principal"))
	})
	handle("PUT /_emulator/vaults/{vault}/fault", 0, func(r *http.Request) (any, error) {
		var in Fault
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, e.SetFault(r.PathValue("vault"), in)
	})
	handle("DELETE /_emulator/vaults/{vault}/fault", 0, func(r *http.Request) (any, error) {
		return nil, e.ClearFault(r.PathValue("vault"))
	})
	handle("PUT /_emulator/vaults/{vault}/throttle", 0, func(r *http.Request) (any, error) {
		var in Throttle
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, e.SetThrottle(r.PathValue("vault"), in)
	})
	handle("GET /_emulator/counters", http.StatusOK, func(r *http.Request) (any, error) { return e.Counters(), nil })
	handle("DELETE /_emulator/counters", 0, func(r *http.Request) (any, error) {
		e.ResetCounters()
		return nil, nil
	})
	handle("POST /_emulator/demo", http.StatusOK, func(r *http.Request) (any, error) {
		var in demoIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return SeedDemo(e, in.RedirectURIs)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(e.admin)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orgkms-azureemu"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": apiError{Code: "unauthorized", Message: "missing or wrong emulator admin token"}})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		mux.ServeHTTP(w, r)
	})
}

// ControlError is an error answered by the control API. It unwraps to
// ErrNotFound, ErrConflict, ErrInvalid or ErrPurgeProtected when it is one.
type ControlError struct {
	Status  int
	Code    string
	Message string
}

func (e *ControlError) Error() string { return e.Message }

func (e *ControlError) Unwrap() error {
	switch e.Code {
	case "not_found":
		return ErrNotFound
	case "conflict":
		return ErrConflict
	case "invalid_argument":
		return ErrInvalid
	case "purge_protected":
		return ErrPurgeProtected
	}
	return nil
}

// ControlClient calls a running emulator's control API.
type ControlClient struct {
	base  string
	token string
	hc    *http.Client
}

// NewControlClient returns a client for the emulator at baseURL
// (https://127.0.0.1:PORT) that trusts caPool and sends token.
func NewControlClient(baseURL, token string, caPool *x509.CertPool) *ControlClient {
	return &ControlClient{
		base:  strings.TrimSuffix(baseURL, "/"),
		token: token,
		hc:    &http.Client{Transport: Transport(baseURL, caPool), Timeout: 30 * time.Second},
	}
}

// OpenControlClient returns a client for the emulator at baseURL whose state
// directory is dataDir; it reads the admin token and CA from there.
func OpenControlClient(baseURL, dataDir string) (*ControlClient, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		return nil, fmt.Errorf("read emulator admin token: %w", err)
	}
	pool, err := CAPoolFromFile(filepath.Join(dataDir, caCertFile))
	if err != nil {
		return nil, err
	}
	return NewControlClient(baseURL, strings.TrimSpace(string(b)), pool), nil
}

func (c *ControlClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("emulator %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("emulator %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("emulator %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var env struct {
			Error apiError `json:"error"`
		}
		if json.Unmarshal(b, &env) != nil || env.Error.Code == "" {
			return &ControlError{Status: resp.StatusCode, Code: "http", Message: fmt.Sprintf("emulator %s %s: status %d", method, path, resp.StatusCode)}
		}
		return &ControlError{Status: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("emulator %s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// Tenants lists the tenants.
func (c *ControlClient) Tenants(ctx context.Context) ([]Tenant, error) {
	var out []Tenant
	return out, c.do(ctx, http.MethodGet, "/_emulator/tenants", nil, &out)
}

// CreateTenant is [Emulator.CreateTenant] over the control API.
func (c *ControlClient) CreateTenant(ctx context.Context, name string) (Tenant, error) {
	var out Tenant
	return out, c.do(ctx, http.MethodPost, "/_emulator/tenants", createTenantIn{Name: name}, &out)
}

// RegisterApp is [Emulator.RegisterApp] over the control API.
func (c *ControlClient) RegisterApp(ctx context.Context, homeTenant string, reg AppRegistration) (App, error) {
	var out App
	return out, c.do(ctx, http.MethodPost, "/_emulator/apps", registerAppIn{HomeTenant: homeTenant, AppRegistration: reg}, &out)
}

// GrantConsent is [Emulator.GrantConsent] over the control API.
func (c *ControlClient) GrantConsent(ctx context.Context, tenant, clientID string) (ServicePrincipal, error) {
	var out ServicePrincipal
	return out, c.do(ctx, http.MethodPut, "/_emulator/tenants/"+esc(tenant)+"/consents/"+esc(clientID), nil, &out)
}

// RevokeConsent is [Emulator.RevokeConsent] over the control API.
func (c *ControlClient) RevokeConsent(ctx context.Context, tenant, clientID string) error {
	return c.do(ctx, http.MethodDelete, "/_emulator/tenants/"+esc(tenant)+"/consents/"+esc(clientID), nil, nil)
}

// RevokeTokens is [Emulator.RevokeTokens] over the control API.
func (c *ControlClient) RevokeTokens(ctx context.Context, tenant, clientID string) error {
	return c.do(ctx, http.MethodPost, "/_emulator/tenants/"+esc(tenant)+"/consents/"+esc(clientID)+"/revoke-tokens", nil, nil)
}

// CreateVault is [Emulator.CreateVault] over the control API.
func (c *ControlClient) CreateVault(ctx context.Context, tenant, name string, opts VaultOptions) (Vault, error) {
	var out Vault
	return out, c.do(ctx, http.MethodPost, "/_emulator/vaults", createVaultIn{Tenant: tenant, Name: name, VaultOptions: opts}, &out)
}

// CreateKey is [Emulator.CreateKey] over the control API.
func (c *ControlClient) CreateKey(ctx context.Context, vault, name string, opts KeyOptions) (KeyInfo, error) {
	var out KeyInfo
	return out, c.do(ctx, http.MethodPost, "/_emulator/vaults/"+esc(vault)+"/keys", createKeyIn{Name: name, KeyOptions: opts}, &out)
}

// GetKey is [Emulator.GetKey] over the control API.
func (c *ControlClient) GetKey(ctx context.Context, vault, name string) (KeyInfo, error) {
	var out KeyInfo
	return out, c.do(ctx, http.MethodGet, "/_emulator/vaults/"+esc(vault)+"/keys/"+esc(name), nil, &out)
}

// RotateKey is [Emulator.RotateKey] over the control API.
func (c *ControlClient) RotateKey(ctx context.Context, vault, name string) (KeyInfo, error) {
	var out KeyInfo
	return out, c.do(ctx, http.MethodPost, "/_emulator/vaults/"+esc(vault)+"/keys/"+esc(name)+"/rotate", nil, &out)
}

// UpdateKey is [Emulator.UpdateKey] over the control API.
func (c *ControlClient) UpdateKey(ctx context.Context, vault, name, version string, enabled *bool, nbf, exp *time.Time) (KeyInfo, error) {
	var out KeyInfo
	return out, c.do(ctx, http.MethodPatch, "/_emulator/vaults/"+esc(vault)+"/keys/"+esc(name),
		updateKeyIn{Version: version, Enabled: enabled, NBF: nbf, EXP: exp}, &out)
}

// SetKeyTags is [Emulator.SetKeyTags] over the control API.
func (c *ControlClient) SetKeyTags(ctx context.Context, vault, name, version string, tags map[string]string) (KeyInfo, error) {
	if tags == nil {
		tags = map[string]string{}
	}
	var out KeyInfo
	return out, c.do(ctx, http.MethodPatch, "/_emulator/vaults/"+esc(vault)+"/keys/"+esc(name), updateKeyIn{Version: version, Tags: tags}, &out)
}

// DeleteKey is [Emulator.DeleteKey] over the control API.
func (c *ControlClient) DeleteKey(ctx context.Context, vault, name string) (KeyInfo, error) {
	var out KeyInfo
	return out, c.do(ctx, http.MethodDelete, "/_emulator/vaults/"+esc(vault)+"/keys/"+esc(name), nil, &out)
}

// RecoverKey is [Emulator.RecoverKey] over the control API.
func (c *ControlClient) RecoverKey(ctx context.Context, vault, name string) (KeyInfo, error) {
	var out KeyInfo
	return out, c.do(ctx, http.MethodPost, "/_emulator/vaults/"+esc(vault)+"/keys/"+esc(name)+"/recover", nil, &out)
}

// PurgeKey is [Emulator.PurgeKey] over the control API.
func (c *ControlClient) PurgeKey(ctx context.Context, vault, name string) error {
	return c.do(ctx, http.MethodPost, "/_emulator/vaults/"+esc(vault)+"/keys/"+esc(name)+"/purge", nil, nil)
}

// SetPolicy is [Emulator.SetPolicy] over the control API.
func (c *ControlClient) SetPolicy(ctx context.Context, vault, principal string, perms []string) error {
	return c.do(ctx, http.MethodPut, "/_emulator/vaults/"+esc(vault)+"/policies/"+esc(principal), policyIn{Permissions: perms}, nil)
}

// RemovePolicy is [Emulator.RemovePolicy] over the control API.
func (c *ControlClient) RemovePolicy(ctx context.Context, vault, principal string) error {
	return c.do(ctx, http.MethodDelete, "/_emulator/vaults/"+esc(vault)+"/policies/"+esc(principal), nil, nil)
}

// SetFault is [Emulator.SetFault] over the control API.
func (c *ControlClient) SetFault(ctx context.Context, vault string, f Fault) error {
	return c.do(ctx, http.MethodPut, "/_emulator/vaults/"+esc(vault)+"/fault", f, nil)
}

// SetThrottle is [Emulator.SetThrottle] over the control API.
func (c *ControlClient) SetThrottle(ctx context.Context, vault string, t Throttle) error {
	return c.do(ctx, http.MethodPut, "/_emulator/vaults/"+esc(vault)+"/throttle", t, nil)
}

// ClearFault is [Emulator.ClearFault] over the control API.
func (c *ControlClient) ClearFault(ctx context.Context, vault string) error {
	return c.do(ctx, http.MethodDelete, "/_emulator/vaults/"+esc(vault)+"/fault", nil, nil)
}

// Counters is [Emulator.Counters] over the control API.
func (c *ControlClient) Counters(ctx context.Context) (map[string]map[string]int, error) {
	out := map[string]map[string]int{}
	return out, c.do(ctx, http.MethodGet, "/_emulator/counters", nil, &out)
}

// ResetCounters is [Emulator.ResetCounters] over the control API.
func (c *ControlClient) ResetCounters(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/_emulator/counters", nil, nil)
}

// SeedDemo is [SeedDemo] over the control API.
func (c *ControlClient) SeedDemo(ctx context.Context, redirectURIs []string) (Demo, error) {
	var out Demo
	return out, c.do(ctx, http.MethodPost, "/_emulator/demo", demoIn{RedirectURIs: redirectURIs}, &out)
}
