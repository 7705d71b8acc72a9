package azureemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Token audiences (resources) the emulator's STS issues tokens for.
const (
	resourceVault      = "https://vault.azure.net"
	resourceManagedHSM = "https://managedhsm.azure.net"
)

var knownResources = []string{resourceVault, resourceManagedHSM, "https://management.azure.com", "https://graph.microsoft.com"}

// tokenClaims are the claims of an emulator access token (a subset of a v1
// Entra access token).
type tokenClaims struct {
	Aud      string `json:"aud"`
	Iss      string `json:"iss"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Exp      int64  `json:"exp"`
	AppID    string `json:"appid"`
	AppIDAcr string `json:"appidacr"`
	Idp      string `json:"idp"`
	Oid      string `json:"oid"`
	Sub      string `json:"sub"`
	Tid      string `json:"tid"`
	Uti      string `json:"uti"`
	Ver      string `json:"ver"`
	// Gen is the emulator's token generation of the app in the tenant (see
	// [Emulator.RevokeTokens]); omitted while 0.
	Gen int `json:"xms_emu_gen,omitempty"`
}

func issuerV1(tid string) string { return "https://sts.windows.net/" + tid + "/" }

var b64url = base64.RawURLEncoding

// issueToken signs claims; the caller holds e.mu.
func (e *Emulator) issueTokenLocked(c tokenClaims) string {
	h := b64url.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","kid":"orgkms-azureemu"}`))
	body, _ := json.Marshal(c) // cannot fail: plain struct
	signing := h + "." + b64url.EncodeToString(body)
	mac := hmac.New(sha256.New, e.st.TokenKey)
	mac.Write([]byte(signing))
	return signing + "." + b64url.EncodeToString(mac.Sum(nil))
}

// parseToken checks the signature of a token and returns its claims.
// Expiry and audience are the caller's business.
func (e *Emulator) parseTokenLocked(tok string) (tokenClaims, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return tokenClaims{}, false
	}
	sig, err := b64url.DecodeString(parts[2])
	if err != nil {
		return tokenClaims{}, false
	}
	mac := hmac.New(sha256.New, e.st.TokenKey)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return tokenClaims{}, false
	}
	body, err := b64url.DecodeString(parts[1])
	if err != nil {
		return tokenClaims{}, false
	}
	var c tokenClaims
	if err := json.Unmarshal(body, &c); err != nil {
		return tokenClaims{}, false
	}
	return c, true
}

func (e *Emulator) entraMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.handleOpenIDConfig)
	mux.HandleFunc("GET /{tenant}/.well-known/openid-configuration", e.handleOpenIDConfig)
	mux.HandleFunc("GET /common/discovery/instance", e.handleInstanceDiscovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.handleToken)
	mux.HandleFunc("GET /{tenant}/adminconsent", e.handleConsentPage)
	mux.HandleFunc("GET /{tenant}/v2.0/adminconsent", e.handleConsentPage)
	mux.HandleFunc("POST /{tenant}/adminconsent", e.handleConsentPost)
	mux.HandleFunc("POST /{tenant}/v2.0/adminconsent", e.handleConsentPost)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "orgkms Azure Key Vault + Entra ID emulator")
	})
	return mux
}

// baseURL is the scheme and host the client used to reach the STS.
func baseURL(r *http.Request) string { return "https://" + r.Host }

func isMultiTenantAlias(t string) bool {
	t = strings.ToLower(t)
	return t == "common" || t == "organizations"
}

func (e *Emulator) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("tenant")
	tid := "{tenantid}"
	if !isMultiTenantAlias(ref) {
		e.mu.Lock()
		t := e.directoryLocked(ref)
		e.mu.Unlock()
		if t == nil {
			e.writeAADError(w, http.StatusBadRequest, "invalid_tenant", 90002, tenantNotFound(ref))
			return
		}
		tid = t.ID
	}
	base := baseURL(r) + "/" + tid
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "tid", "oid"},
		"kerberos_endpoint":                     base + "/kerberos",
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
		"rbac_url":                              "https://pas.windows.net",
	})
}

func (e *Emulator) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := "common"
	if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" {
		if u, err := url.Parse(ae); err == nil {
			if seg := strings.Split(strings.Trim(u.Path, "/"), "/"); len(seg) > 0 && seg[0] != "" {
				tenant = seg[0]
			}
		}
	}
	host := r.Host
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + host + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []any{map[string]any{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

func tenantNotFound(ref string) string {
	return fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. "+
		"Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", ref)
}

func appNotFound(appID, directory string) string {
	return fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been "+
		"installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication "+
		"request to the wrong tenant.", appID, directory)
}

// writeAADError writes an Entra OAuth error body.
func (e *Emulator) writeAADError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	now := e.now().UTC()
	trace, corr := newGUID(), newGUID()
	ts := now.Format("2006-01-02 15:04:05Z")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, status, map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			aadsts, desc, trace, corr, ts),
		"error_codes":    []int{aadsts},
		"timestamp":      ts,
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	})
}

func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		e.writeAADError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	ref := r.PathValue("tenant")
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		if clientID == "" {
			clientID, _ = url.QueryUnescape(u)
		}
		if secret == "" {
			secret, _ = url.QueryUnescape(p)
		}
	}
	if f.Get("grant_type") == "" {
		e.writeAADError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	if f.Get("grant_type") != "client_credentials" {
		e.writeAADError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '"+f.Get("grant_type")+"'.")
		return
	}
	if clientID == "" {
		e.writeAADError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if isMultiTenantAlias(ref) {
		e.writeAADError(w, http.StatusBadRequest, "invalid_request", 90002, tenantNotFound(ref))
		return
	}
	t := e.directoryLocked(ref)
	if t == nil {
		e.writeAADError(w, http.StatusBadRequest, "invalid_request", 90002, tenantNotFound(ref))
		return
	}
	a := e.st.Apps[strings.ToLower(clientID)]
	var sp *spRec
	if a != nil {
		sp = t.SPs[a.ClientID]
	}
	if a == nil || sp == nil {
		e.writeAADError(w, http.StatusBadRequest, "unauthorized_client", 700016, appNotFound(clientID, t.Name))
		return
	}
	switch {
	case f.Get("client_assertion") != "":
		e.writeAADError(w, http.StatusUnauthorized, "invalid_client", 700027,
			"The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found.]")
		return
	case secret == "":
		e.writeAADError(w, http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return
	case subtle.ConstantTimeCompare([]byte(secret), []byte(a.Secret)) != 1:
		e.writeAADError(w, http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+a.ClientID+"'.")
		return
	}
	scope := f.Get("scope")
	if scope == "" {
		e.writeAADError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return
	}
	resource := ""
	for _, s := range strings.Fields(scope) {
		switch s {
		case "openid", "offline_access", "profile", "email":
			continue
		}
		res, ok := strings.CutSuffix(s, "/.default")
		res = strings.TrimSuffix(res, "/")
		if !ok || resource != "" || !knownResource(res) {
			e.writeAADError(w, http.StatusBadRequest, "invalid_scope", 70011,
				"The provided value for the input parameter 'scope' is not valid. The scope "+scope+" is not valid.")
			return
		}
		resource = res
	}
	if resource == "" {
		e.writeAADError(w, http.StatusBadRequest, "invalid_scope", 70011,
			"The provided value for the input parameter 'scope' is not valid. The scope "+scope+" is not valid.")
		return
	}
	now := e.now()
	life := e.cfg.TokenLifetime
	c := tokenClaims{
		Aud: resource, Iss: issuerV1(t.ID), Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(life).Unix(),
		AppID: a.ClientID, AppIDAcr: "1", Idp: issuerV1(t.ID), Oid: sp.ObjectID, Sub: sp.ObjectID, Tid: t.ID,
		Uti: newHexID(8), Ver: "1.0", Gen: t.TokenGens[a.ClientID],
	}
	tok := e.issueTokenLocked(c)
	secs := int(life / time.Second)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
	})
}

func knownResource(r string) bool {
	for _, k := range knownResources {
		if strings.EqualFold(k, r) {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// consentRequest is a pending admin-consent page, keyed by its
// anti-forgery token. Everything the POST acts on is kept server side.
type consentRequest struct {
	tenantRef   string // as in the URL
	tenantID    string // "" for common/organizations: chosen on the page
	clientID    string
	redirectURI string
	state       string
	expires     time.Time
}

const consentTTL = 10 * time.Minute

type consentPageData struct {
	AppName    string
	ClientID   string
	HomeTenant string
	Tenant     *Tenant
	Tenants    []Tenant
	Scope      string
	Token      string
	Action     string
	Redirect   string
}

type errorPageData struct {
	Code        int
	Message     string
	RequestID   string
	Correlation string
	Timestamp   string
}

var consentTmpl = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Permissions requested</title>
<style>body{font-family:Segoe UI,Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}
main{max-width:440px;margin:60px auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:24px;font-weight:600;margin:0 0 16px}.app{font-weight:600}.muted{color:#666;font-size:13px}
ul{padding-left:20px}button{min-width:108px;padding:6px 12px;font-size:15px;margin-right:8px;cursor:pointer}
button.primary{background:#0067b8;color:#fff;border:1px solid #0067b8}select{width:100%;padding:4px}</style></head>
<body><main>
<p class="muted">Microsoft Entra ID (orgkms emulator)</p>
<h1>Permissions requested</h1>
<p>Accept for your organization</p>
<p><span class="app">{{.AppName}}</span><br><span class="muted">App ID {{.ClientID}} &middot; published by tenant {{.HomeTenant}} &middot; unverified</span></p>
<p>This app would like to:</p>
<ul><li>Sign in as an application in your organization{{if .Scope}} ({{.Scope}}){{end}}</li>
<li>Be granted access to Azure Key Vault keys by your administrators (access policies are set separately)</li></ul>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf_token" value="{{.Token}}">
{{if .Tenant}}<p>If you accept, this app gets access to the specified resources for all users in <b>{{.Tenant.Name}}</b> ({{.Tenant.ID}}).</p>
{{else}}<p><label for="tenant">Grant consent on behalf of organization:</label><br>
<select id="tenant" name="tenant">{{range .Tenants}}<option value="{{.ID}}">{{.Name}} ({{.ID}})</option>{{end}}</select></p>{{end}}
<p class="muted">Accepting these permissions means that you allow this app to use your data as specified in their terms of service and privacy statement. You will be redirected to {{.Redirect}}.</p>
<button type="submit" name="action" value="cancel">Cancel</button><button class="primary" type="submit" name="action" value="accept">Accept</button>
</form></main></body></html>
`))

var errorTmpl = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title>
<style>body{font-family:Segoe UI,Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}
main{max-width:440px;margin:60px auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:24px;font-weight:600}.muted{color:#666;font-size:13px;word-break:break-all}</style></head>
<body><main><p class="muted">Microsoft Entra ID (orgkms emulator)</p>
<h1>Sorry, but we're having trouble signing you in.</h1>
<p>AADSTS{{.Code}}: {{.Message}}</p>
<p class="muted">Request Id: {{.RequestID}}<br>Correlation Id: {{.Correlation}}<br>Timestamp: {{.Timestamp}}<br>Message: AADSTS{{.Code}}: {{.Message}}</p>
</main></body></html>
`))

func setPageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

func (e *Emulator) errorPage(w http.ResponseWriter, code int, msg string) {
	setPageHeaders(w)
	w.WriteHeader(http.StatusBadRequest)
	_ = errorTmpl.Execute(w, errorPageData{Code: code, Message: msg, RequestID: newGUID(), Correlation: newGUID(),
		Timestamp: e.now().UTC().Format(time.RFC3339)})
}

func (e *Emulator) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := r.PathValue("tenant")
	clientID := strings.TrimSpace(q.Get("client_id"))
	if clientID == "" {
		e.errorPage(w, 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	data := consentPageData{Scope: q.Get("scope")}
	req := &consentRequest{tenantRef: ref, clientID: clientID, state: q.Get("state"), expires: e.now().Add(consentTTL)}
	dirName := ref
	if isMultiTenantAlias(ref) {
		data.Tenants = e.tenantsLocked()
	} else {
		t := e.directoryLocked(ref)
		if t == nil {
			e.errorPage(w, 90002, tenantNotFound(ref))
			return
		}
		pt := t.public()
		data.Tenant = &pt
		req.tenantID = t.ID
		dirName = t.Name
	}
	a := e.st.Apps[strings.ToLower(clientID)]
	if a == nil {
		e.errorPage(w, 700016, appNotFound(clientID, dirName))
		return
	}
	req.clientID = a.ClientID
	redirect := q.Get("redirect_uri")
	if redirect == "" {
		for _, u := range a.RedirectURIs {
			if !strings.Contains(u, ":*") {
				redirect = u
				break
			}
		}
	}
	if redirect == "" || !redirectAllowed(a.RedirectURIs, redirect) {
		e.errorPage(w, 50011, fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. "+
			"Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. "+
			"Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.", redirect, a.ClientID))
		return
	}
	req.redirectURI = redirect
	home := a.HomeTenantID
	if ht, ok := e.st.Tenants[a.HomeTenantID]; ok {
		home = ht.Name
	}
	now := e.now()
	for k, c := range e.consents {
		if now.After(c.expires) {
			delete(e.consents, k)
		}
	}
	tok := b64url.EncodeToString(randomBytes(32))
	e.consents[tok] = req
	data.AppName, data.ClientID, data.HomeTenant, data.Token, data.Redirect = a.Name, a.ClientID, home, tok, redirect
	data.Action = r.URL.Path
	setPageHeaders(w)
	w.WriteHeader(http.StatusOK)
	_ = consentTmpl.Execute(w, data)
}

func (e *Emulator) handleConsentPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		e.errorPage(w, 900144, "The request body must contain the following parameter: 'csrf_token'.")
		return
	}
	tok := r.PostForm.Get("csrf_token")
	e.mu.Lock()
	defer e.mu.Unlock()
	req, ok := e.consents[tok]
	if tok == "" || !ok || e.now().After(req.expires) || !strings.EqualFold(req.tenantRef, r.PathValue("tenant")) {
		e.errorPage(w, 90015, "The consent request is invalid, has expired or was already used (anti-forgery check). Start the admin consent again.")
		return
	}
	delete(e.consents, tok) // single use
	u, err := url.Parse(req.redirectURI)
	if err != nil {
		e.errorPage(w, 50011, "The redirect URI is invalid.")
		return
	}
	q := u.Query()
	switch r.PostForm.Get("action") {
	case "accept":
		tenant := req.tenantID
		if tenant == "" {
			tenant = r.PostForm.Get("tenant")
		}
		sp, err := e.grantConsentLocked(tenant, req.clientID)
		if err != nil {
			e.errorPage(w, 90002, tenantNotFound(tenant))
			return
		}
		q.Set("admin_consent", "True")
		q.Set("tenant", sp.TenantID)
	default:
		q.Set("error", "permission_denied")
		q.Set("error_description", "The admin canceled the request")
	}
	if req.state != "" {
		q.Set("state", req.state)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}
