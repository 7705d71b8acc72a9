package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/orgkms/orgkms/internal/fault"
)

// TestBrowserKeyUse: the Key use page lists the org's key use, with its
// refusals, filters it, and links the export with the same filters.
func TestBrowserKeyUse(t *testing.T) {
	b := startBrowser(t)
	s := newBrowserStack(t)
	ctx := context.Background()
	s.keys.RecordRefused(ctx, demoOrg, "default", "decrypt", "intruder-svc", &fault.Error{Kind: fault.Forbidden})
	if err := s.keys.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	admin := b.newTab(t, "admin")
	admin.signIn(t, s, adminEmail, adminPass)
	admin.click(t, "a#nav-usage")
	if p := admin.location(t).Path; p != "/console/orgs/"+demoOrg+"/usage" {
		t.Fatalf("a#nav-usage led to %s", p)
	}
	all := oneLine(admin.text(t, "table#usage"))
	for _, want := range []string{"orgkms:dev default encrypt ok 1", "intruder-svc default decrypt permission_denied 1"} {
		if !strings.Contains(all, want) {
			t.Errorf("table#usage = %q, want a row %q", all, want)
		}
	}

	// Filter: denied calls only.
	admin.fill(t, "input#filter-outcome", "denied")
	admin.click(t, "button#filter-apply")
	denied := oneLine(admin.text(t, "table#usage"))
	if !strings.Contains(denied, "permission_denied") || strings.Contains(denied, " ok ") {
		t.Errorf("table#usage filtered by outcome=denied = %q", denied)
	}
	href := evalJS[string](t, admin, `document.querySelector("a#usage-export-csv").getAttribute("href")`)
	if !strings.Contains(href, "/usage/export?") || !strings.Contains(href, "outcome=denied") || !strings.Contains(href, "format=csv") {
		t.Errorf("export link = %q, want the CSV export with outcome=denied", href)
	}
	// A bad filter is shown at its field.
	admin.fill(t, "input#filter-outcome", "exploded")
	admin.load(t, "filtering by a bad outcome", http.StatusBadRequest, chromedp.Click(chromedp.CSS("button#filter-apply")))
	if e := admin.text(t, "#filter-outcome-error"); !strings.Contains(e, "outcome must be") {
		t.Errorf("#filter-outcome-error = %q", e)
	}
}

// The console's export (the page's link) is CSV of the filtered records,
// for the org's admins only.
func TestKeyUseExport(t *testing.T) {
	h := newHarness(t, options{})
	ctx := context.Background()
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	h.keys.RecordRefused(ctx, "acme", "default", "decrypt", "intruder-svc", &fault.Error{Kind: fault.Forbidden})
	if err := h.keys.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	b := h.signedIn(secAdmin)
	p := b.get("/console/orgs/acme/usage/export?format=csv&outcome=denied").want(200)
	if !strings.HasPrefix(p.body, "minute,key,op,caller,outcome,count,first,last\n") || !strings.Contains(p.body, ",default,decrypt,intruder-svc,permission_denied,1,") || strings.Contains(p.body, ",ok,") {
		t.Errorf("CSV export = %q", p.body)
	}
	page := b.get("/console/orgs/acme/usage").want(200)
	if !strings.Contains(page.body, "intruder-svc") || !strings.Contains(page.body, "svc") {
		t.Errorf("Key use page does not list the records:\n%s", page.body)
	}
	b.get("/console/orgs/acme/usage/export?format=xml").want(400)
	h.signedIn(globex).get("/console/orgs/acme/usage").want(403)
}
