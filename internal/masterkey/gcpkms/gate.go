package gcpkms

import (
	"context"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orgkms/orgkms/internal/masterkey"
)

// Cloud is the cloud of this driver's vaults in a [masterkey.Vault].
const Cloud = "gcp"

// VaultOf is the vault of key k for its request budget: its project and
// location ("acme-prod/europe-west4"), the unit of Cloud KMS's request
// quotas.
func VaultOf(k KeyName) masterkey.Vault {
	return masterkey.Vault{Cloud: Cloud, Name: k.Project + "/" + k.Location}
}

// Vault names the vault of ref for its request budget (see [VaultOf]);
// false when ref is not a key of this driver.
func (p *Provider) Vault(ref masterkey.Ref) (masterkey.Vault, bool) {
	if ref.Provider != Scheme {
		return masterkey.Vault{}, false
	}
	k, err := p.Key(ref)
	if err != nil {
		return masterkey.Vault{}, false
	}
	return VaultOf(k), true
}

var _ masterkey.VaultNamer = (*Provider)(nil)

// vaultOfName is the vault of a Cloud KMS resource name
// (projects/P/locations/L/...); false for any other name.
func vaultOfName(name string) (masterkey.Vault, bool) {
	parts := strings.SplitN(name, "/", 5)
	if len(parts) < 4 || parts[0] != "projects" || parts[2] != "locations" || parts[1] == "" || parts[3] == "" {
		return masterkey.Vault{}, false
	}
	return masterkey.Vault{Cloud: Cloud, Name: parts[1] + "/" + parts[3]}, true
}

// gateInterceptor is the unary client interceptor that admits every RPC
// attempt through gate under the vault of the request's resource name.
// The client's retries (gax.Invoke) call the gRPC stub, and so this
// interceptor, once per attempt: each attempt is admitted once and its
// answer reported once. A RESOURCE_EXHAUSTED answer is throttled, with
// the delay of its RetryInfo when Google sent one. A request naming no
// resource is not gated.
func gateInterceptor(gate masterkey.Gate) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		named, ok := req.(interface{ GetName() string })
		if !ok {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		v, ok := vaultOfName(named.GetName())
		if !ok {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		done, err := gate.Admit(ctx, v)
		if err != nil {
			return err // a *fault.Error, which the client's retry policy does not retry
		}
		err = invoker(ctx, method, req, reply, cc, opts...)
		throttled, after := throttledAnswer(err)
		done(throttled, after)
		return err
	}
}

// maxRetryAfter bounds the RetryInfo delay Google names.
const maxRetryAfter = 5 * time.Minute

// throttledAnswer reports whether err is Cloud KMS's RESOURCE_EXHAUSTED,
// with its RetryInfo's delay (0 when it sent none: the gate's default).
func throttledAnswer(err error) (bool, time.Duration) {
	if err == nil {
		return false, 0
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return false, 0
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			if after := ri.GetRetryDelay().AsDuration(); after > 0 {
				return true, min(after, maxRetryAfter)
			}
		}
	}
	return true, 0
}
