package sqlite

import "testing"

func TestPragmas(t *testing.T) {
	for _, s := range []*Store{openTemp(t), openFile(t, Memory)} {
		for _, db := range []struct {
			name string
			q    querier
		}{{"writer", s.w}, {"reader", s.r}} {
			var fk int
			if err := db.q.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil {
				t.Fatal(err)
			}
			if fk != 1 {
				t.Errorf("%s %s: foreign_keys = %d, want 1", s.path, db.name, fk)
			}
		}
		if s.path == Memory {
			continue
		}
		var mode string
		if err := s.r.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Errorf("journal_mode = %q, want wal", mode)
		}
	}
}
