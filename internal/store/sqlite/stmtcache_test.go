package sqlite

import (
	"fmt"
	"testing"
)

// TestStatementCache: a file database's connections prepare each query
// once and reuse it; the same query issued while its rows are still open
// gets its own statement (right results for both); a failing statement
// stays usable; queries past the cache's bound still run.
func TestStatementCache(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cached := func(q string) bool {
		var ok bool
		if err := conn.Raw(func(dc any) error {
			_, ok = dc.(*guardedConn).stmts[q]
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	const q = `SELECT value FROM json_each(?) ORDER BY key`
	rows, err := conn.QueryContext(ctx, q, `[1,2,3]`)
	if err != nil {
		t.Fatal(err)
	}
	var outer, inner []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, v)
		// The same query while rows is open.
		var w int
		if err := conn.QueryRowContext(ctx, q, fmt.Sprintf(`[%d]`, 10*v)).Scan(&w); err != nil {
			t.Fatal(err)
		}
		inner = append(inner, w)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if fmt.Sprint(outer) != "[1 2 3]" || fmt.Sprint(inner) != "[10 20 30]" {
		t.Fatalf("outer rows %v, inner rows %v; want [1 2 3] and [10 20 30]", outer, inner)
	}
	if !cached(q) {
		t.Errorf("query %q is not in the connection's statement cache", q)
	}
	// A failing exec (a NOT NULL violation) leaves its statement usable.
	const ins = `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`
	if _, err := conn.ExecContext(ctx, ins, 9999, nil, "x"); err == nil {
		t.Fatal("insert of a NULL name succeeded")
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = ?`, 9999); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, q, `[7]`).Scan(&n); err != nil || n != 7 {
		t.Fatalf("query after a failed statement = %d, %v; want 7", n, err)
	}
	// Past the bound: still correct, not cached.
	for i := range maxCachedStmts + 10 {
		var got int
		if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d + ?`, i), 1).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("query %d = %d, %v; want %d", i, got, err, i+1)
		}
	}
	if cached(fmt.Sprintf(`SELECT %d + ?`, maxCachedStmts+5)) {
		t.Error("the statement cache grew past its bound")
	}
}
