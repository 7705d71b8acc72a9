package awsemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// KMS is a proxy in front of local-kms that completes it to AWS's
// documented behaviour (see the package doc). It is an http.Handler.
type KMS struct {
	upstream string
	client   *http.Client
	// STS, when set, is the issuer of the credentials every request must be
	// signed with (besides STS.PlatformAccessKeyID): an unknown access key
	// is UnrecognizedClientException, an expired one ExpiredTokenException,
	// and a session of a role in another account than the key's is
	// AccessDeniedException.
	STS *STS
	// NoMaterialIDs makes DescribeKey answer without CurrentKeyMaterialId,
	// as AWS did before key material IDs (and as local-kms does), so
	// ListKeyRotations is the only way to see a rotation.
	NoMaterialIDs bool

	mu      sync.Mutex
	keys    map[string]*key   // customer key ARN → its materials
	hidden  map[string]string // hidden material key ARN → customer key ARN
	denied  map[string]map[string]bool
	deleted map[string]bool
	faults  []injected
	calls   map[string]int
	stall   chan struct{} // closed on release; nil when not stalled

	limit    int           // requests per window before ThrottlingException; 0: no limit
	window   time.Duration // of limit
	served   []time.Time   // arrivals counted against limit, within the last window
	requests []Request     // every request, in arrival order
}

// Request is one request the proxy received, as [KMS.Requests] lists
// them.
type Request struct {
	Op        string
	At        time.Time
	Throttled bool // answered ThrottlingException (by the rate limit or an injected fault)
}

type key struct {
	materials []material // [0] is the original material, the key itself
	window    int        // PendingWindowInDays of the last ScheduleKeyDeletion
	// Automatic rotation (EnableKeyRotation): its period in days, and
	// when it was enabled; off while period is 0.
	rotationDays int
	rotationFrom time.Time
}

type material struct {
	arn     string // the local-kms key holding it
	id      string
	rotated time.Time // zero for the original material
}

type injected struct {
	op, code string
	status   int
	left     int
}

// NewKMS returns a proxy in front of the local-kms at upstream (its base
// URL).
func NewKMS(upstream string) *KMS {
	return &KMS{upstream: strings.TrimSuffix(upstream, "/"), client: &http.Client{Timeout: 30 * time.Second},
		keys: map[string]*key{}, hidden: map[string]string{}, denied: map[string]map[string]bool{}, deleted: map[string]bool{}, calls: map[string]int{}}
}

// Deny makes every call of action (e.g. "kms:Decrypt") on keyARN fail with
// AccessDeniedException, as when the key policy stops allowing it.
func (k *KMS) Deny(keyARN, action string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.denied[keyARN] == nil {
		k.denied[keyARN] = map[string]bool{}
	}
	k.denied[keyARN][action] = true
}

// Allow undoes every Deny of keyARN.
func (k *KMS) Allow(keyARN string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.denied, keyARN)
}

// Delete ends keyARN's waiting period: the key is gone, and every call
// naming it fails with NotFoundException, as AWS answers for a deleted key.
func (k *KMS) Delete(keyARN string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deleted[keyARN] = true
}

// Fail makes the next n calls of op (e.g. "Encrypt", or "" for any) fail
// with the error code and HTTP status, as AWS throttling or an outage does.
func (k *KMS) Fail(op, code string, status, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults = append(k.faults, injected{op: op, code: code, status: status, left: n})
}

// SetRateLimit models the request quota of the emulated account and
// Region (AWS KMS's quotas are per account per Region, shared by every key
// in it): beyond limit requests within any window, a request is answered
// as AWS answers it, HTTP 400 ThrottlingException "Rate exceeded", with no
// Retry-After; throttled requests do not count against the limit. A limit
// of 0 removes it.
func (k *KMS) SetRateLimit(limit int, window time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.limit, k.window, k.served = limit, window, nil
}

// Requests returns every request received so far, in arrival order.
func (k *KMS) Requests() []Request {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Request(nil), k.requests...)
}

// Stall makes every request hang (until the client gives up) until
// release is called.
func (k *KMS) Stall() (release func()) {
	ch := make(chan struct{})
	k.mu.Lock()
	k.stall = ch
	k.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			if k.stall == ch {
				k.stall = nil
			}
			k.mu.Unlock()
			close(ch)
		})
	}
}

// Calls returns the number of calls of op answered or refused so far.
func (k *KMS) Calls(op string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[op]
}

// MaterialIDs returns keyARN's key material IDs, oldest first.
func (k *KMS) MaterialIDs(keyARN string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ids []string
	for _, m := range k.keyLocked(keyARN).materials {
		ids = append(ids, m.id)
	}
	return ids
}

func materialID(arn string, n int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s#%d", arn, n))
	return hex.EncodeToString(h[:])
}

func (k *KMS) keyLocked(arn string) *key {
	kk, ok := k.keys[arn]
	if !ok {
		kk = &key{materials: []material{{arn: arn, id: materialID(arn, 0)}}}
		k.keys[arn] = kk
	}
	return kk
}

func (k *KMS) current(arn string) material {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.keyLocked(arn).materials
	return m[len(m)-1]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", randomHex(16))
	w.WriteHeader(status)
	w.Write(b)
}

func kmsFail(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"__type": code, "message": msg})
}

// call sends one request of op to local-kms and returns its status and
// body.
func (k *KMS) call(ctx context.Context, op string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.upstream+"/", bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Amz-Target", "TrentService."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := k.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// describe returns the ARN and metadata local-kms has for keyID.
func (k *KMS) describe(ctx context.Context, keyID string) (int, []byte, map[string]any) {
	st, b, err := k.call(ctx, "DescribeKey", map[string]string{"KeyId": keyID})
	if err != nil {
		return http.StatusBadGateway, []byte(`{"__type":"KMSInternalException","message":"local-kms is unreachable"}`), nil
	}
	if st != http.StatusOK {
		return st, b, nil
	}
	var out struct{ KeyMetadata map[string]any }
	if json.Unmarshal(b, &out) != nil || out.KeyMetadata == nil {
		return http.StatusInternalServerError, []byte(`{"__type":"KMSInternalException","message":"unreadable DescribeKey answer"}`), nil
	}
	return st, b, out.KeyMetadata
}

// relay writes a local-kms answer, naming the customer key instead of any
// hidden material key.
func (k *KMS) relay(w http.ResponseWriter, status int, body []byte) {
	k.mu.Lock()
	for h, c := range k.hidden {
		body = bytes.ReplaceAll(body, []byte(h), []byte(c))
	}
	k.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", randomHex(16))
	w.WriteHeader(status)
	w.Write(body)
}

// blobARN returns the key ARN a local-kms ciphertext blob names first.
func blobARN(blob []byte) string {
	if len(blob) < 1 || len(blob) < 1+int(blob[0]) {
		return ""
	}
	return string(blob[1 : 1+int(blob[0])])
}

// actions are the IAM actions of the proxied operations.
var actions = map[string]string{
	"DescribeKey": "kms:DescribeKey", "Encrypt": "kms:Encrypt", "Decrypt": "kms:Decrypt",
	"DisableKey": "kms:DisableKey", "EnableKey": "kms:EnableKey", "ScheduleKeyDeletion": "kms:ScheduleKeyDeletion",
	"CancelKeyDeletion": "kms:CancelKeyDeletion", "RotateKeyOnDemand": "kms:RotateKeyOnDemand",
	"ListKeyRotations": "kms:ListKeyRotations", "GetKeyRotationStatus": "kms:GetKeyRotationStatus",
	"GenerateDataKey": "kms:GenerateDataKey", "GenerateDataKeyWithoutPlaintext": "kms:GenerateDataKeyWithoutPlaintext",
	"EnableKeyRotation": "kms:EnableKeyRotation", "DisableKeyRotation": "kms:DisableKeyRotation",
}

// ServeHTTP answers one KMS JSON 1.1 request.
func (k *KMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if !ok || err != nil || r.Method != http.MethodPost {
		kmsFail(w, http.StatusBadRequest, "UnknownOperationException", "")
		return
	}
	k.mu.Lock()
	stall := k.stall
	k.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-r.Context().Done():
			return
		}
	}
	k.mu.Lock()
	k.calls[op]++
	now := time.Now()
	for i := range k.faults {
		f := &k.faults[i]
		if f.left > 0 && (f.op == "" || f.op == op) {
			f.left--
			k.requests = append(k.requests, Request{Op: op, At: now, Throttled: f.code == "ThrottlingException"})
			k.mu.Unlock()
			kmsFail(w, f.status, f.code, "injected "+f.code)
			return
		}
	}
	if k.limit > 0 {
		i := 0
		for i < len(k.served) && now.Sub(k.served[i]) >= k.window {
			i++
		}
		k.served = k.served[i:]
		if len(k.served) >= k.limit {
			k.requests = append(k.requests, Request{Op: op, At: now, Throttled: true})
			k.mu.Unlock()
			kmsFail(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
			return
		}
		k.served = append(k.served, now)
	}
	k.requests = append(k.requests, Request{Op: op, At: now})
	k.mu.Unlock()
	var principal, caller string
	if k.STS != nil {
		akid := accessKeyOf(r)
		se, live := k.STS.Session(akid)
		switch {
		case akid == k.STS.PlatformAccessKeyID:
			principal, caller = "platform", "arn:aws:iam::000000000000:user/platform"
		case live:
			principal = se.RoleARN
			acct, name := roleParts(se.RoleARN)
			caller = "arn:aws:sts::" + acct + ":assumed-role/" + name + "/" + se.SessionName
		case k.STS.Issued(akid):
			kmsFail(w, http.StatusBadRequest, "ExpiredTokenException", "The security token included in the request is expired")
			return
		default:
			kmsFail(w, http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
			return
		}
	}
	var req map[string]any
	if json.Unmarshal(body, &req) != nil {
		kmsFail(w, http.StatusBadRequest, "SerializationException", "")
		return
	}
	action, keyed := actions[op]
	if !keyed {
		k.forward(w, r.Context(), op, req)
		return
	}
	keyID, _ := req["KeyId"].(string)
	if op == "Decrypt" && keyID == "" {
		if blob, ok := req["CiphertextBlob"].(string); ok {
			keyID = k.customerOf(blobARN(decodeB64(blob)))
		}
	}
	st, raw, md := k.describe(r.Context(), keyID)
	if md == nil {
		k.relay(w, st, raw)
		return
	}
	arn, _ := md["Arn"].(string)
	k.mu.Lock()
	_, isHidden := k.hidden[arn]
	gone := k.deleted[arn]
	deny := k.denied[arn][action]
	k.mu.Unlock()
	if isHidden || gone {
		kmsFail(w, http.StatusBadRequest, "NotFoundException", "Key '"+arn+"' does not exist")
		return
	}
	if principal != "" && principal != "platform" {
		if acct, _ := roleParts(principal); !strings.Contains(arn, ":"+acct+":key/") {
			deny = true
		}
	}
	if deny {
		kmsFail(w, http.StatusBadRequest, "AccessDeniedException", fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action", caller, action, arn, action))
		return
	}
	ctx := r.Context()
	switch op {
	case "DescribeKey":
		k.mu.Lock()
		kk := k.keyLocked(arn)
		if !k.NoMaterialIDs {
			md["CurrentKeyMaterialId"] = kk.materials[len(kk.materials)-1].id
		}
		if md["KeyState"] == "PendingDeletion" && kk.window > 0 {
			md["PendingDeletionWindowInDays"] = kk.window
		}
		k.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"KeyMetadata": md})
	case "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext":
		m := k.current(arn)
		req["KeyId"] = m.arn
		st, b, err := k.call(ctx, op, req)
		if err != nil {
			kmsFail(w, http.StatusInternalServerError, "KMSInternalException", "local-kms is unreachable")
			return
		}
		if st == http.StatusOK && op != "Encrypt" {
			b = withField(b, "KeyMaterialId", m.id)
		}
		k.relay(w, st, b)
	case "Decrypt":
		k.decrypt(w, ctx, arn, req)
	case "RotateKeyOnDemand":
		k.rotate(w, ctx, arn, md)
	case "ListKeyRotations":
		k.listRotations(w, arn, req)
	case "EnableKeyRotation", "DisableKeyRotation", "GetKeyRotationStatus":
		k.rotation(w, op, arn, md, req)
	case "DisableKey", "EnableKey", "ScheduleKeyDeletion", "CancelKeyDeletion":
		k.setState(w, ctx, op, arn, req)
	default:
		req["KeyId"] = arn
		k.forward(w, ctx, op, req)
	}
}

func (k *KMS) forward(w http.ResponseWriter, ctx context.Context, op string, req map[string]any) {
	st, b, err := k.call(ctx, op, req)
	if err != nil {
		kmsFail(w, http.StatusInternalServerError, "KMSInternalException", "local-kms is unreachable")
		return
	}
	k.relay(w, st, b)
}

// customerOf returns the customer key of a (possibly hidden material)
// key ARN.
func (k *KMS) customerOf(arn string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.hidden[arn]; ok {
		return c
	}
	return arn
}

func (k *KMS) decrypt(w http.ResponseWriter, ctx context.Context, arn string, req map[string]any) {
	blob, _ := req["CiphertextBlob"].(string)
	made := blobARN(decodeB64(blob))
	k.mu.Lock()
	var m *material
	for i, mm := range k.keyLocked(arn).materials {
		if mm.arn == made {
			m = &k.keys[arn].materials[i]
		}
	}
	_, madeHidden := k.hidden[made]
	k.mu.Unlock()
	if m == nil {
		if strings.HasPrefix(made, "arn:aws:kms:") && (madeHidden || k.isKey(ctx, made)) {
			// AWS: a KeyId that is not the key of the blob.
			kmsFail(w, http.StatusBadRequest, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")
			return
		}
		req["KeyId"] = arn // garbage: local-kms answers InvalidCiphertextException
		k.forward(w, ctx, "Decrypt", req)
		return
	}
	req["KeyId"] = m.arn
	st, b, err := k.call(ctx, "Decrypt", req)
	if err != nil {
		kmsFail(w, http.StatusInternalServerError, "KMSInternalException", "local-kms is unreachable")
		return
	}
	if st == http.StatusOK {
		b = withField(b, "KeyMaterialId", m.id)
	}
	k.relay(w, st, b)
}

func (k *KMS) isKey(ctx context.Context, arn string) bool {
	_, _, md := k.describe(ctx, arn)
	return md != nil
}

// rotate creates new key material, as RotateKeyOnDemand does (at most 25
// on-demand rotations per key).
func (k *KMS) rotate(w http.ResponseWriter, ctx context.Context, arn string, md map[string]any) {
	switch md["KeyState"] {
	case "Enabled":
	case "Disabled":
		kmsFail(w, http.StatusBadRequest, "DisabledException", arn+" is disabled.")
		return
	default:
		kmsFail(w, http.StatusBadRequest, "KMSInvalidStateException", fmt.Sprintf("%s is %v.", arn, md["KeyState"]))
		return
	}
	k.mu.Lock()
	n := len(k.keyLocked(arn).materials)
	k.mu.Unlock()
	if n > 25 {
		kmsFail(w, http.StatusBadRequest, "LimitExceededException", "The key has reached the limit of 25 on-demand rotations")
		return
	}
	st, b, err := k.call(ctx, "CreateKey", map[string]any{"Description": "awsemu key material " + fmt.Sprint(n) + " of " + arn})
	var out struct{ KeyMetadata struct{ Arn string } }
	if err != nil || st != http.StatusOK || json.Unmarshal(b, &out) != nil || out.KeyMetadata.Arn == "" {
		kmsFail(w, http.StatusInternalServerError, "KMSInternalException", "could not create key material")
		return
	}
	k.mu.Lock()
	kk := k.keyLocked(arn)
	kk.materials = append(kk.materials, material{arn: out.KeyMetadata.Arn, id: materialID(arn, len(kk.materials)), rotated: time.Now()})
	k.hidden[out.KeyMetadata.Arn] = arn
	k.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"KeyId": arn})
}

func (k *KMS) listRotations(w http.ResponseWriter, arn string, req map[string]any) {
	all := req["IncludeKeyMaterial"] == "ALL_KEY_MATERIAL"
	k.mu.Lock()
	ms := k.keyLocked(arn).materials
	var rot []map[string]any
	for i, m := range ms {
		if i == 0 && !all {
			continue
		}
		e := map[string]any{"KeyId": arn, "KeyMaterialId": m.id, "KeyMaterialState": "NON_CURRENT"}
		if i == len(ms)-1 {
			e["KeyMaterialState"] = "CURRENT"
		}
		if i > 0 {
			e["RotationDate"] = float64(m.rotated.UnixMilli()) / 1000
			e["RotationType"] = "ON_DEMAND"
		}
		rot = append(rot, e)
	}
	k.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"Rotations": rot, "Truncated": false})
}

// setState applies a state change to the key and every hidden material,
// and leaves a key whose deletion was cancelled Disabled, as AWS does.
func (k *KMS) setState(w http.ResponseWriter, ctx context.Context, op, arn string, req map[string]any) {
	req["KeyId"] = arn
	st, b, err := k.call(ctx, op, req)
	if err != nil {
		kmsFail(w, http.StatusInternalServerError, "KMSInternalException", "local-kms is unreachable")
		return
	}
	if st != http.StatusOK {
		k.relay(w, st, b)
		return
	}
	k.mu.Lock()
	var targets []string
	for _, m := range k.keyLocked(arn).materials[1:] {
		targets = append(targets, m.arn)
	}
	if op == "ScheduleKeyDeletion" {
		win := 30
		if v, ok := req["PendingWindowInDays"].(float64); ok {
			win = int(v)
		}
		k.keyLocked(arn).window = win
		b = withField(withField(b, "KeyState", "PendingDeletion"), "PendingWindowInDays", win)
	}
	k.mu.Unlock()
	for _, t := range targets {
		c := make(map[string]any, len(req))
		for n, v := range req {
			c[n] = v
		}
		c["KeyId"] = t
		k.call(ctx, op, c)
	}
	if op == "CancelKeyDeletion" {
		for _, t := range append([]string{arn}, targets...) {
			k.call(ctx, "DisableKey", map[string]any{"KeyId": t})
		}
	}
	k.relay(w, st, b)
}

// withField adds a field to a JSON object.
func withField(b []byte, name string, v any) []byte {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	m[name] = v
	out, err := json.Marshal(m)
	if err != nil {
		return b
	}
	return out
}

// rotation models automatic rotation in AWS's shapes, which local-kms
// lacks (its GetKeyRotationStatus has no period and no next date, and it
// ignores RotationPeriodInDays): EnableKeyRotation takes
// RotationPeriodInDays (90 to 2560, default 365), DisableKeyRotation turns
// it off, GetKeyRotationStatus reports KeyRotationEnabled and, while on,
// RotationPeriodInDays and NextRotationDate (enabled + period). A key
// pending deletion reports it off, as AWS does; the schedule is kept for
// CancelKeyDeletion. Rotations themselves happen on demand only
// (RotateKeyOnDemand).
func (k *KMS) rotation(w http.ResponseWriter, op, arn string, md map[string]any, req map[string]any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kk := k.keyLocked(arn)
	switch op {
	case "EnableKeyRotation":
		days := 365
		if v, ok := req["RotationPeriodInDays"].(float64); ok {
			days = int(v)
		}
		if days < 90 || days > 2560 {
			kmsFail(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("1 validation error detected: Value '%d' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value between 90 and 2560", days))
			return
		}
		if md["KeyState"] != "Enabled" {
			kmsFail(w, http.StatusBadRequest, "KMSInvalidStateException", arn+" is "+fmt.Sprint(md["KeyState"]))
			return
		}
		if kk.rotationDays == 0 {
			kk.rotationFrom = time.Now().UTC()
		}
		kk.rotationDays = days
		writeJSON(w, http.StatusOK, map[string]any{})
	case "DisableKeyRotation":
		kk.rotationDays = 0
		writeJSON(w, http.StatusOK, map[string]any{})
	default: // GetKeyRotationStatus
		out := map[string]any{"KeyId": arn, "KeyRotationEnabled": false}
		if kk.rotationDays > 0 && md["KeyState"] != "PendingDeletion" {
			out["KeyRotationEnabled"] = true
			out["RotationPeriodInDays"] = kk.rotationDays
			out["NextRotationDate"] = float64(kk.rotationFrom.Add(time.Duration(kk.rotationDays) * 24 * time.Hour).Unix())
		}
		writeJSON(w, http.StatusOK, out)
	}
}
