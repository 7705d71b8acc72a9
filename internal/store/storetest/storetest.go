package storetest

import (
	"bytes"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Store is what a storage implementation provides.
type Store interface {
	keys.Store
	auth.Store
}

// Run runs the suite. open returns a new, empty, migrated store for t and
// arranges for it to be closed with t.Cleanup; it is called once per case,
// from parallel subtests.
func Run(t *testing.T, open func(t *testing.T) Store) {
	cases := []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"OrgRoundTrip", testOrgRoundTrip},
		{"ListOrgsPaging", testListOrgsPaging},
		{"ListOrgsLimits", testListOrgsLimits},
		{"NotFound", testNotFound},
		{"Conflict", testConflict},
		{"Invalid", testInvalid},
		{"DataKeyLifecycle", testDataKeyLifecycle},
		{"VersionRace", testVersionRace},
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AuditChainConcurrent", testAuditChainConcurrent},
		{"AuditAtomicWithChange", testAuditAtomicWithChange},
		{"AuditOrgs", testAuditOrgs},
		{"TenantIsolation", testTenantIsolation},
		{"UsageAdditive", testUsageAdditive},
		{"UsageQuery", testUsageQuery},
		{"UsageCleanup", testUsageCleanup},
		{"Tokens", testTokens},
		{"CancelledContext", testCancelledContext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// base has nanoseconds and a zone on purpose: stores keep microseconds and
// the instant, so round trips compare with the time truncated to µs.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

func micro(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// material returns n deterministic bytes that include 0x00 and 0xff, seeded
// by s so different objects get different bytes.
func material(s string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + len(s)*7 + int(s[i%len(s)]))
	}
	b[0], b[n-1] = 0x00, 0xff
	return b
}

// fixture is everything CreateOrg takes.
type fixture struct {
	org   keys.Org
	root  keys.RootKeyWrapping
	first keys.DataKey
	ev    audit.Event
}

func newOrg(id string) fixture {
	mk := masterkey.Ref{Provider: "local", ID: "platform-master"}
	return fixture{
		org: keys.Org{ID: id, Name: "Org " + id + " ✓", CreatedAt: base, MasterKey: mk},
		root: keys.RootKeyWrapping{OrgID: id, State: keys.WrappingActive, CreatedAt: base.Add(time.Microsecond),
			Wrapped: masterkey.Wrapped{Ciphertext: material("root/"+id, 72), Key: mk.WithVersion("v1-" + id)}},
		first: newKey(id, "default", 1),
		ev:    event(id, "org.create", "org/"+id),
	}
}

func (f fixture) create(t *testing.T, s Store) {
	t.Helper()
	if err := s.CreateOrg(t.Context(), f.org, f.root, f.first, f.ev); err != nil {
		t.Fatalf("CreateOrg(%s) = %v", f.org.ID, err)
	}
}

func createOrg(t *testing.T, s Store, id string) fixture {
	t.Helper()
	f := newOrg(id)
	f.create(t, s)
	return f
}

// newKey returns a data key of org with versions 1..n.
func newKey(org, name string, n uint32) keys.DataKey {
	k := keys.DataKey{OrgID: org, Name: name, CreatedAt: base.Add(2 * time.Microsecond), LatestVersion: n, MinDecryptionVersion: 1}
	for v := uint32(1); v <= n; v++ {
		k.Versions = append(k.Versions, newVersion(org, name, v))
	}
	return k
}

func newVersion(org, name string, v uint32) keys.DataKeyVersion {
	return keys.DataKeyVersion{Version: v, CreatedAt: base.Add(time.Duration(v) * time.Second),
		Wrapped: material(fmt.Sprintf("%s/%s/%d", org, name, v), 60)}
}

func event(org, action, target string) audit.Event {
	return audit.Event{OrgID: org, Time: base, Actor: "user:alice@" + org, Action: action, Target: target,
		Details: map[string]string{"reason": "test", "note": "ünïcode, \"quotes\" and\nnewline"}}
}

func auditLog(t *testing.T, s Store, org string) []audit.Event {
	t.Helper()
	evs, err := s.AuditEvents(t.Context(), org, 0, 0)
	if err != nil {
		t.Fatalf("AuditEvents(%s) = %v", org, err)
	}
	if err := audit.Verify(evs); err != nil {
		t.Errorf("audit.Verify(%s) = %v", org, err)
	}
	return evs
}

func checkKind(t *testing.T, call string, err error, want fault.Kind) {
	t.Helper()
	if err == nil {
		t.Errorf("%s = nil, want kind %v", call, want)
		return
	}
	if got := fault.KindOf(err); got != want {
		t.Errorf("%s kind = %v, want %v (%v)", call, got, want, err)
	}
	if fault.As(err) == nil {
		t.Errorf("%s = %T %v, want a *fault.Error", call, err, err)
	}
}

func checkOrg(t *testing.T, got, want keys.Org) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.MasterKey != want.MasterKey || !got.CreatedAt.Equal(micro(want.CreatedAt)) {
		t.Errorf("org = %+v, want %+v (time truncated to µs)", got, want)
	}
}

// checkDataKey compares keys; with material false, versions' Wrapped must
// be empty.
func checkDataKey(t *testing.T, got, want keys.DataKey, withMaterial bool) {
	t.Helper()
	if got.OrgID != want.OrgID || got.Name != want.Name || !got.CreatedAt.Equal(micro(want.CreatedAt)) ||
		got.LatestVersion != want.LatestVersion || got.MinDecryptionVersion != want.MinDecryptionVersion {
		t.Errorf("data key %s/%s = {org %s name %s created %v latest %d min %d}, want {org %s name %s created %v latest %d min %d}",
			want.OrgID, want.Name, got.OrgID, got.Name, got.CreatedAt, got.LatestVersion, got.MinDecryptionVersion,
			want.OrgID, want.Name, micro(want.CreatedAt), want.LatestVersion, want.MinDecryptionVersion)
	}
	if len(got.Versions) != len(want.Versions) {
		t.Errorf("data key %s/%s has %d versions, want %d", want.OrgID, want.Name, len(got.Versions), len(want.Versions))
		return
	}
	for i, gv := range got.Versions {
		wv := want.Versions[i]
		if gv.Version != wv.Version || !gv.CreatedAt.Equal(micro(wv.CreatedAt)) {
			t.Errorf("data key %s/%s version[%d] = {%d %v}, want {%d %v}", want.OrgID, want.Name, i, gv.Version, gv.CreatedAt, wv.Version, micro(wv.CreatedAt))
		}
		switch {
		case withMaterial && !bytes.Equal(gv.Wrapped, wv.Wrapped):
			t.Errorf("data key %s/%s version %d material = %x, want %x", want.OrgID, want.Name, gv.Version, gv.Wrapped, wv.Wrapped)
		case !withMaterial && len(gv.Wrapped) != 0:
			t.Errorf("data key %s/%s version %d has material in a listing", want.OrgID, want.Name, gv.Version)
		}
	}
}

// checkEvent compares a stored event with the one appended (as returned
// by AppendAudit or built by the test).
func checkEvent(t *testing.T, got, want audit.Event) {
	t.Helper()
	if got.OrgID != want.OrgID || got.Seq != want.Seq || !got.Time.Equal(micro(want.Time)) || got.Actor != want.Actor ||
		got.Action != want.Action || got.Target != want.Target || !maps.Equal(got.Details, want.Details) ||
		(want.Hash != "" && (got.PrevHash != want.PrevHash || got.Hash != want.Hash)) {
		t.Errorf("audit event = %+v, want %+v", got, want)
	}
	if h := audit.Hash(got); h != got.Hash {
		t.Errorf("audit event %s#%d hash = %s, recomputed %s", got.OrgID, got.Seq, got.Hash, h)
	}
}
