package storetest

import (
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/keys"
)

func testUsageQuery(t *testing.T, s Store) {
	ctx := t.Context()
	m := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	rec := func(org, key, op, who, outcome string, minute time.Time, n int64, first, last time.Duration) keys.UsageCount {
		return keys.UsageCount{OrgID: org, KeyName: key, Op: op, Principal: who, Outcome: outcome, Minute: minute, Count: n,
			First: minute.Add(first), Last: minute.Add(last)}
	}
	batches := [][]keys.UsageCount{
		{rec("acme", "default", "encrypt", "token:svc", "", m, 3, 10*time.Second, 20*time.Second)},
		{rec("acme", "default", "encrypt", "token:svc", "ok", m, 2, 5*time.Second, 15*time.Second)}, // "" is ok: adds up
		{rec("acme", "default", "decrypt", "token:svc", "ciphertext_invalid", m, 1, 30*time.Second, 30*time.Second)},
		{rec("acme", "default", "encrypt", "token:other", "forbidden", m.Add(time.Minute), 4, time.Second, 50*time.Second)},
		{rec("acme", "payments", "datakey", "token:svc", "ok", m.Add(2*time.Minute), 7, 0, 59*time.Second)},
		{rec("globex", "default", "encrypt", "token:globex-svc", "ok", m, 9, 0, time.Second)},
	}
	for i, b := range batches {
		if err := s.AddUsage(ctx, b); err != nil {
			t.Fatalf("AddUsage(ctx, batch %d) = %v", i, err)
		}
	}
	all, err := s.QueryUsage(ctx, "acme", keys.UsageFilter{})
	if err != nil {
		t.Fatalf("QueryUsage(ctx, acme, {}) = %v", err)
	}
	type row struct {
		key, op, who, outcome string
		minute                time.Time
		n                     int64
		first, last           time.Time
	}
	got := func(us []keys.UsageCount) []row {
		var out []row
		for _, u := range us {
			if u.OrgID != "acme" {
				t.Errorf("QueryUsage(acme) returned a record of org %q", u.OrgID)
			}
			out = append(out, row{u.KeyName, u.Op, u.Principal, u.Outcome, u.Minute, u.Count, u.First, u.Last})
		}
		return out
	}
	want := []row{
		{"payments", "datakey", "token:svc", "ok", m.Add(2 * time.Minute), 7, m.Add(2 * time.Minute), m.Add(2*time.Minute + 59*time.Second)},
		{"default", "encrypt", "token:other", "forbidden", m.Add(time.Minute), 4, m.Add(time.Minute + time.Second), m.Add(time.Minute + 50*time.Second)},
		{"default", "encrypt", "token:svc", "ok", m, 5, m.Add(5 * time.Second), m.Add(20 * time.Second)}, // first: min, last: max
		{"default", "decrypt", "token:svc", "ciphertext_invalid", m, 1, m.Add(30 * time.Second), m.Add(30 * time.Second)},
	}
	checkRows := func(name string, g, w []row) {
		t.Helper()
		if len(g) != len(w) {
			t.Errorf("%s = %+v, want %+v", name, g, w)
			return
		}
		for i := range g {
			a, b := g[i], w[i]
			if a.key != b.key || a.op != b.op || a.who != b.who || a.outcome != b.outcome || !a.minute.Equal(b.minute) || a.n != b.n ||
				!a.first.Equal(b.first) || !a.last.Equal(b.last) {
				t.Errorf("%s[%d] = %+v, want %+v", name, i, a, b)
			}
		}
	}
	checkRows("QueryUsage(acme, {})", got(all), want)

	for _, tc := range []struct {
		name string
		f    keys.UsageFilter
		want []row
	}{
		{"since", keys.UsageFilter{Since: m.Add(time.Minute)}, want[:2]},
		{"until", keys.UsageFilter{Until: m.Add(time.Minute)}, want[2:]},
		{"key", keys.UsageFilter{Key: "payments"}, want[:1]},
		{"caller", keys.UsageFilter{Caller: "token:other"}, want[1:2]},
		{"op", keys.UsageFilter{Op: "decrypt"}, want[3:]},
		{"outcome ok", keys.UsageFilter{Outcome: keys.OutcomeOK}, []row{want[0], want[2]}},
		{"outcome denied", keys.UsageFilter{Outcome: keys.OutcomeDenied}, []row{want[1], want[3]}},
		{"outcome code", keys.UsageFilter{Outcome: "forbidden"}, want[1:2]},
		{"combined", keys.UsageFilter{Key: "default", Op: "encrypt", Caller: "token:svc", Since: m, Until: m.Add(time.Minute)}, want[2:3]},
		{"none", keys.UsageFilter{Caller: "token:globex-svc"}, nil}, // another org's caller
		{"limit", keys.UsageFilter{Limit: 2}, want[:2]},
	} {
		us, err := s.QueryUsage(ctx, "acme", tc.f)
		if err != nil {
			t.Fatalf("QueryUsage(ctx, acme, %s) = %v", tc.name, err)
		}
		checkRows("QueryUsage(acme, "+tc.name+")", got(us), tc.want)
	}

	// Paging: After continues where the last page ended, with no record
	// twice and none missing.
	var paged []keys.UsageCount
	f := keys.UsageFilter{Limit: 1}
	for range 10 {
		page, err := s.QueryUsage(ctx, "acme", f)
		if err != nil {
			t.Fatalf("QueryUsage(ctx, acme, page) = %v", err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		last := page[len(page)-1]
		f.After = &last
	}
	checkRows("QueryUsage(acme) paged", got(paged), want)

	// Tenant isolation.
	other, err := s.QueryUsage(ctx, "globex", keys.UsageFilter{})
	if err != nil {
		t.Fatalf("QueryUsage(ctx, globex, {}) = %v", err)
	}
	if len(other) != 1 || other[0].OrgID != "globex" || other[0].Principal != "token:globex-svc" {
		t.Errorf("QueryUsage(globex) = %+v, want its one record", other)
	}
}

func testUsageCleanup(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	old, recent := now.Add(-100*24*time.Hour), now.Add(-time.Hour)
	var batch []keys.UsageCount
	for i := range 5 {
		batch = append(batch, keys.UsageCount{OrgID: "acme", KeyName: "default", Op: "encrypt", Principal: "token:svc", Minute: old.Add(time.Duration(i) * time.Minute), Count: 1})
	}
	batch = append(batch, keys.UsageCount{OrgID: "globex", KeyName: "default", Op: "encrypt", Principal: "token:svc", Minute: old, Count: 1},
		keys.UsageCount{OrgID: "acme", KeyName: "default", Op: "decrypt", Principal: "token:svc", Minute: recent, Count: 2})
	if err := s.AddUsage(ctx, batch); err != nil {
		t.Fatalf("AddUsage(ctx) = %v", err)
	}

	// The claim: once per interval, whoever asks.
	every := time.Hour
	if ok, err := s.ClaimUsageCleanup(ctx, "node-a", now, every); err != nil || !ok {
		t.Fatalf("ClaimUsageCleanup(node-a, now) = %v, %v, want true", ok, err)
	}
	if ok, err := s.ClaimUsageCleanup(ctx, "node-b", now.Add(time.Minute), every); err != nil || ok {
		t.Fatalf("ClaimUsageCleanup(node-b, now+1m) = %v, %v, want false (claimed until now+1h)", ok, err)
	}
	if ok, err := s.ClaimUsageCleanup(ctx, "node-b", now.Add(every), every); err != nil || !ok {
		t.Fatalf("ClaimUsageCleanup(node-b, now+1h) = %v, %v, want true", ok, err)
	}

	before := now.Add(-90 * 24 * time.Hour)
	ev := audit.Event{OrgID: audit.Platform, Time: now, Actor: "system", Action: "usage.cleanup", Target: "usage"}
	n, err := s.DeleteUsageBefore(ctx, before, 4, ev)
	if err != nil || n != 4 {
		t.Fatalf("DeleteUsageBefore(limit 4) = %d, %v, want 4", n, err)
	}
	n, err = s.DeleteUsageBefore(ctx, before, 4, ev)
	if err != nil || n != 2 {
		t.Fatalf("DeleteUsageBefore(limit 4) again = %d, %v, want 2", n, err)
	}
	n, err = s.DeleteUsageBefore(ctx, before, 4, ev)
	if err != nil || n != 0 {
		t.Fatalf("DeleteUsageBefore(limit 4) a third time = %d, %v, want 0", n, err)
	}
	left, err := s.QueryUsage(ctx, "acme", keys.UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Op != "decrypt" {
		t.Errorf("after cleanup acme has %+v, want only the recent decrypt record", left)
	}
	g, err := s.QueryUsage(ctx, "globex", keys.UsageFilter{})
	if err != nil || len(g) != 0 {
		t.Errorf("after cleanup globex has %+v, %v, want none", g, err)
	}
	evs, err := s.AuditEvents(ctx, audit.Platform, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Action != "usage.cleanup" || evs[0].Details["records"] != "4" || evs[1].Details["records"] != "2" {
		t.Errorf("platform audit = %+v, want two usage.cleanup events (4 and 2 records; none for the empty pass)", evs)
	}
}
