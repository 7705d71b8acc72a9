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
		// The writer's statement journals (one per savepoint) stay in
		// memory: temp_store 2 is MEMORY.
		var ts int
		if err := s.w.QueryRowContext(t.Context(), `PRAGMA temp_store`).Scan(&ts); err != nil {
			t.Fatal(err)
		}
		if ts != 2 {
			t.Errorf("writer temp_store = %d, want 2 (memory)", ts)
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
