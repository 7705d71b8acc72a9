package notify_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
)

func auditEvent(org string) audit.Event {
	return audit.Event{OrgID: org, Time: time.Now(), Actor: "test", Action: "webhook.create", Target: "webhook"}
}

func auditRevoked(org string, i int) audit.Event {
	return audit.Event{OrgID: org, Time: time.Now(), Actor: "orgkms", Action: "cmk.revoked", Target: "cmk", Details: map[string]string{"n": strconv.Itoa(i)}}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
