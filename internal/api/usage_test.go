package api_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
)

// usageFixture makes real calls on acme: successes, a decrypt failure, and
// calls refused by authorization (a member token of acme, a service token
// of globex), then flushes the usage records.
func usageFixture(t *testing.T) (*testServer, *client.Client) {
	t.Helper()
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme", "globex")
	ctx := t.Context()
	svc := ts.client(ts.token("acme-svc", "acme", auth.RoleService))
	var ct []byte
	for i := range 3 {
		c, _, err := svc.Encrypt(ctx, "acme", "default", []byte("secret-plaintext"), nil)
		if err != nil {
			t.Fatalf("Encrypt %d: %v", i, err)
		}
		ct = c
	}
	if _, err := svc.Decrypt(ctx, "acme", "default", ct, nil); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), ct...)
	bad[len(bad)-1] ^= 1
	if _, err := svc.Decrypt(ctx, "acme", "default", bad, nil); apiCode(err) != "ciphertext_invalid" {
		t.Fatalf("Decrypt(tampered) = %v, want ciphertext_invalid", err)
	}
	viewer := ts.client(ts.token("acme-viewer", "acme", auth.RoleMember))
	if _, _, err := viewer.Encrypt(ctx, "acme", "default", []byte("x"), nil); apiCode(err) != "permission_denied" {
		t.Fatalf("Encrypt by a member = %v, want permission_denied", err)
	}
	intruder := ts.client(ts.token("globex-secret-name", "globex", auth.RoleService))
	if _, err := intruder.Decrypt(ctx, "acme", "default", ct, nil); apiCode(err) != "permission_denied" {
		t.Fatalf("Decrypt by globex's token on acme = %v, want permission_denied", err)
	}
	if _, _, err := intruder.Encrypt(ctx, "globex", "default", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.keys.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	return ts, ts.client(ts.token("acme-admin", "acme", auth.RoleAdmin))
}

type usageRow struct {
	key, op, principal, outcome string
	count                       int64
}

func usageRows(us []client.UsageCount) []usageRow {
	var out []usageRow
	for _, u := range us {
		out = append(out, usageRow{u.Key, u.Op, u.Principal, u.Outcome, u.Count})
	}
	return out
}

func sameRows(a, b []usageRow) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestUsageRecordsAfterRealCalls(t *testing.T) {
	ts, admin := usageFixture(t)
	ctx := t.Context()
	l, err := admin.QueryUsage(ctx, "acme", client.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// One minute (or two, if the calls straddled a minute boundary): compare
	// the totals per (key, op, principal, outcome).
	totals := map[usageRow]int64{}
	for _, u := range l.Usage {
		if u.First.Before(u.Minute) || u.Last.Before(u.First) || u.Last.Sub(u.Minute) >= 60e9 {
			t.Errorf("record %+v: first and last not within its minute", u)
		}
		totals[usageRow{u.Key, u.Op, u.Principal, u.Outcome, 0}] += u.Count
	}
	want := map[usageRow]int64{
		{"default", "encrypt", "acme-svc", "ok", 0}:                              3,
		{"default", "decrypt", "acme-svc", "ok", 0}:                              1,
		{"default", "decrypt", "acme-svc", "ciphertext_invalid", 0}:              1,
		{"default", "encrypt", "acme-viewer", "permission_denied", 0}:            1,
		{"default", "decrypt", "(token of another org)", "permission_denied", 0}: 1,
	}
	if len(totals) != len(want) {
		t.Errorf("acme usage = %+v, want %+v", totals, want)
	}
	for k, n := range want {
		if totals[k] != n {
			t.Errorf("acme usage %+v = %d, want %d", k, totals[k], n)
		}
	}

	// Tenant isolation: acme never sees globex's token name; globex sees
	// only its own call; globex's admin cannot read acme's records.
	body, _ := json.Marshal(l)
	if bytes.Contains(body, []byte("globex-secret-name")) || bytes.Contains(body, []byte("secret-plaintext")) {
		t.Errorf("acme usage names globex's token or holds plaintext: %s", body)
	}
	gl, err := ts.client(ts.token("globex-admin", "globex", auth.RoleAdmin)).QueryUsage(ctx, "globex", client.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := usageRows(gl.Usage); !sameRows(got, []usageRow{{"default", "encrypt", "globex-secret-name", "ok", 1}}) {
		t.Errorf("globex usage = %+v, want its one encrypt", got)
	}
	if _, err := ts.client(ts.token("globex-admin2", "globex", auth.RoleAdmin)).QueryUsage(ctx, "acme", client.UsageQuery{}); apiCode(err) != "permission_denied" {
		t.Errorf("globex's admin reading acme's usage = %v, want permission_denied", err)
	}

	// Filters.
	for _, tc := range []struct {
		name string
		q    client.UsageQuery
		want map[string]int64 // op/principal/outcome → total
	}{
		{"caller", client.UsageQuery{Caller: "acme-viewer"}, map[string]int64{"encrypt/acme-viewer/permission_denied": 1}},
		{"op", client.UsageQuery{Op: "decrypt", Caller: "acme-svc"}, map[string]int64{"decrypt/acme-svc/ok": 1, "decrypt/acme-svc/ciphertext_invalid": 1}},
		{"denied", client.UsageQuery{Outcome: "denied"}, map[string]int64{"decrypt/acme-svc/ciphertext_invalid": 1, "encrypt/acme-viewer/permission_denied": 1, "decrypt/(token of another org)/permission_denied": 1}},
		{"code", client.UsageQuery{Outcome: "ciphertext_invalid"}, map[string]int64{"decrypt/acme-svc/ciphertext_invalid": 1}},
		{"key", client.UsageQuery{Key: "other"}, map[string]int64{}},
		{"until", client.UsageQuery{Until: l.Usage[len(l.Usage)-1].Minute}, map[string]int64{}},
	} {
		fl, err := admin.QueryUsage(ctx, "acme", tc.q)
		if err != nil {
			t.Fatalf("QueryUsage(%s) = %v", tc.name, err)
		}
		got := map[string]int64{}
		for _, u := range fl.Usage {
			got[u.Op+"/"+u.Principal+"/"+u.Outcome] += u.Count
		}
		if len(got) != len(tc.want) {
			t.Errorf("QueryUsage(%s) = %v, want %v", tc.name, got, tc.want)
			continue
		}
		for k, n := range tc.want {
			if got[k] != n {
				t.Errorf("QueryUsage(%s) = %v, want %v", tc.name, got, tc.want)
			}
		}
	}

	// Paging: pages of 2 add up to the whole listing, in order.
	var paged []client.UsageCount
	q := client.UsageQuery{Limit: 2}
	for range 10 {
		p, err := admin.QueryUsage(ctx, "acme", q)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, p.Usage...)
		if p.NextPageToken == "" {
			break
		}
		q.PageToken = p.NextPageToken
	}
	if !sameRows(usageRows(paged), usageRows(l.Usage)) {
		t.Errorf("paged usage = %+v, want %+v", usageRows(paged), usageRows(l.Usage))
	}
}

func TestUsageExport(t *testing.T) {
	ts, admin := usageFixture(t)
	ctx := t.Context()
	l, err := admin.QueryUsage(ctx, "acme", client.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := admin.ExportUsage(ctx, "acme", client.UsageQuery{}, "csv", &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v\n%s", err, buf.String())
	}
	if len(recs) != len(l.Usage)+1 || strings.Join(recs[0], ",") != "minute,key,op,caller,outcome,count,first,last" {
		t.Fatalf("CSV export = %q, want a header and %d records", recs, len(l.Usage))
	}
	for i, r := range recs[1:] {
		u := l.Usage[i]
		if r[1] != u.Key || r[2] != u.Op || r[3] != u.Principal || r[4] != u.Outcome {
			t.Errorf("CSV record %d = %q, want %+v", i, r, u)
		}
	}
	buf.Reset()
	if err := admin.ExportUsage(ctx, "acme", client.UsageQuery{Outcome: "denied"}, "jsonl", &buf); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		var u client.UsageCount
		if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
			t.Fatalf("JSONL line %q: %v", sc.Text(), err)
		}
		if u.Outcome == "ok" || u.Count < 1 {
			t.Errorf("denied export has %+v", u)
		}
		n++
	}
	if n != 3 {
		t.Errorf("denied export has %d lines, want 3", n)
	}
	// Export is authorized like the listing.
	if st, _ := ts.raw("GET", "/v1/orgs/acme/usage/export?format=csv", ts.token("g", "globex", auth.RoleAdmin), nil); st != 403 {
		t.Errorf("export by globex's admin = %d, want 403", st)
	}
}

func TestUsageBadFilters(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme")
	tok := ts.token("ka", "acme", auth.RoleKeyAdmin)
	for _, tc := range []struct{ name, query, field string }{
		{"since", "since=yesterday", "since"},
		{"until", "until=2026-13-01", "until"},
		{"until before since", "since=2026-11-29T00:00:00Z&until=2026-11-28T00:00:00Z", "until"},
		{"op", "op=sign", "op"},
		{"outcome", "outcome=exploded", "outcome"},
		{"key", "key=" + url.QueryEscape("a/b"), "key"},
		{"limit zero", "limit=0", "limit"},
		{"limit big", "limit=5000", "limit"},
		{"limit text", "limit=ten", "limit"},
		{"page token", "page_token=zzz", "page_token"},
		{"unknown", "principal=x", "principal"},
	} {
		for _, path := range []string{"/v1/orgs/acme/usage?", "/v1/orgs/acme/usage/export?"} {
			if strings.Contains(path, "export") && (strings.HasPrefix(tc.query, "limit") || strings.HasPrefix(tc.query, "page_token")) {
				tc.field = strings.SplitN(tc.query, "=", 2)[0] // not export parameters: refused as unknown
			}
			st, body := ts.raw("GET", path+tc.query, tok, nil)
			var eb client.ErrorBody
			json.Unmarshal(body, &eb)
			if st != 400 || eb.Error.Code != "invalid_argument" || eb.Error.Field != tc.field {
				t.Errorf("GET %s%s = %d %s, want 400 invalid_argument on %s", path, tc.query, st, body, tc.field)
			}
		}
	}
	st, body := ts.raw("GET", "/v1/orgs/acme/usage/export?format=xml", tok, nil)
	if st != 400 || !bytes.Contains(body, []byte(`"invalid_argument"`)) {
		t.Errorf("export format=xml = %d %s, want 400 invalid_argument", st, body)
	}
	if st, _ := ts.raw("GET", "/v1/orgs/nosuch/usage", ts.token("op", "", auth.RoleOperator), nil); st != 404 {
		t.Errorf("usage of an unknown org = %d, want 404", st)
	}
}
