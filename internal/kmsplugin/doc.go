// Package kmsplugin is orgkms' Kubernetes KMS v2 plugin: a gRPC server of
// the k8s.io/kms v2 KeyManagementService on a unix socket, for
// kube-apiserver's EncryptionConfiguration, on top of the public Go client
// of an orgkms server. One cluster is one org and one of its data keys.
//
// # Calls
//
//   - Encrypt encrypts the apiserver's DEK seed with orgkms encrypt under
//     the org's key (bound to the context [Context]); the response's key_id
//     is the current [Plugin.Status] key_id of the version that encrypted,
//     and the annotation key-version.orgkms.io names that version.
//   - Decrypt is orgkms decrypt: an orgkms ciphertext names its key
//     version, so a seed encrypted before a rotation still decrypts while
//     that version is allowed to (min_decryption_version).
//   - Status answers version "v2", healthz "ok" only when orgkms encrypts
//     for the org (a probe encrypt under its own context) and the org's
//     customer managed key is not revoked or lost, and the key_id.
//
// The request's UID is sent to orgkms as the call's X-Request-Id, which
// orgkms records as the request ID of the call (request log, errors).
//
// # key_id
//
// key_id is "orgkms:KEY:vN:DIGEST": the data key's latest version N and the
// first 12 bytes of SHA-256 over the org, the key, N, the master key that
// wraps the org's root key (its URI and version, as CMK status shows them)
// and the org's data-loss fallback time. It changes when the data key
// rotates and when the root key's wrapping changes (customer managed key
// enabled, rotated, replaced, disabled, fallback), and is the same on every
// replica of the plugin. It holds no secret.
//
// # Health
//
// The state behind Status is refreshed at most every Config.StatusTTL (the
// apiserver polls Status every minute and its healthz), and in the
// background every Config.RefreshInterval to keep the connection to orgkms
// warm. A call that orgkms refuses because the org's key is unusable
// (cmk_*, master_key_*) marks the plugin unhealthy at once, so Status is
// never healthy for longer than StatusTTL after a revocation, and Encrypt
// and Decrypt fail with it (gRPC FailedPrecondition), so that writes stop
// even on apiservers that keep their cached seed.
//
// # Errors
//
// Every failure is a gRPC status: InvalidArgument for a ciphertext orgkms
// refuses as invalid, FailedPrecondition for a revoked or lost key or a
// retired version, Unavailable (retry) for an unreachable or overloaded
// orgkms or a call over its timeout, Unauthenticated and PermissionDenied
// for the plugin's token, NotFound for a missing org or key, Internal
// otherwise. Messages carry orgkms' code and message, never key material.
package kmsplugin
