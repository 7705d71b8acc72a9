package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/fault"
)

// Status returns the HTTP status of a Kind.
func Status(k fault.Kind) int { return k.HTTPStatus() }

// errorDetail renders err for a client: code and message from the fault
// fields only, never from the underlying error text, and never where the
// platform master key lives.
func (h *Handler) errorDetail(err error, requestID string) *client.ErrorDetail {
	d := errorDetailOf(err, requestID)
	d.Message = h.redact(d.Message)
	return d
}

// redact hides the platform master key's location (see
// [keys.Service.RedactPlatformKey]) in text shown to a caller.
func (h *Handler) redact(text string) string {
	if h.keys == nil {
		return text
	}
	return h.keys.RedactPlatformKey(text)
}

func errorDetailOf(err error, requestID string) *client.ErrorDetail {
	kind := fault.KindOf(err)
	d := &client.ErrorDetail{Code: kind.Code(), Message: fault.Message(err), RequestID: requestID}
	if fe := fault.As(err); fe != nil {
		d.Field = fe.Field
		if fe.Op != "" && kind != fault.Invalid && kind != fault.Unauthenticated && kind != fault.Forbidden {
			d.Message = fe.Op + ": " + d.Message
		}
	}
	if kind == fault.Internal {
		d.Message = "internal error; reference " + requestID + " when reporting it"
	}
	return d
}

// writeError is the one place that maps an error to a response and logs it.
func (h *Handler) writeError(c *call, err error) {
	kind := fault.KindOf(err)
	status := Status(kind)
	c.status = status
	if fe := fault.As(err); fe != nil && fe.RetryAfter > 0 {
		c.w.Header().Set("Retry-After", strconv.Itoa(int((fe.RetryAfter+time.Second-1)/time.Second)))
	} else if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		c.w.Header().Set("Retry-After", "1")
	}
	if kind == fault.Unauthenticated {
		c.w.Header().Set("WWW-Authenticate", `Bearer realm="orgkms"`)
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	h.log.LogAttrs(c.r.Context(), level, "request failed",
		slog.String("request_id", c.requestID), slog.String("route", c.route), slog.Int("status", status),
		slog.String("kind", kind.Code()), slog.String("principal", c.p.Name), slog.String("org_id", c.org),
		slog.String("error", err.Error()))
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(status)
	json.NewEncoder(c.w).Encode(client.ErrorBody{Error: *h.errorDetail(err, c.requestID)})
}
