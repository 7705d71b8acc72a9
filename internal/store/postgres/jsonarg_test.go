package postgres

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestJSONArg checks that jsonArg writes what encoding/json writes (the
// same JSON value) for every kind of value the set-based statements pass,
// and strings that need escaping or are not valid UTF-8.
func TestJSONArg(t *testing.T) {
	strs := []string{"", "plain", `quote " and \ backslash`, "new\nline\r\ttab", "\x00\x01\x1f\x7f", "ünïcode ✓ 𝄞",
		"bad \xff utf-8 \xe2\x82", "\u2028\u2029", "<html> & co", `{"k":"v"}`}
	var rows []map[string]any
	for i, s := range strs {
		rows = append(rows, map[string]any{"s": s, s: i, "n": nil, "t": true, "f": false, "i": int64(-1) << 62, "u": uint32(1<<32 - 1),
			"i32": int32(-7), "b": []byte(s), "nb": []byte(nil), "eb": []byte{}, "other": map[string]string{"k": s}, "fl": 1.5})
	}
	for _, in := range [][]map[string]any{nil, {}, {{}}, rows} {
		got, err := jsonArg(in)
		if err != nil {
			t.Fatalf("jsonArg(%v) = %v", in, err)
		}
		want, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal([]byte(got), &g); err != nil {
			t.Fatalf("jsonArg(%v) = %s, not JSON: %v", in, got, err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if in == nil {
			w = []any{} // a statement takes an empty array, never null
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("jsonArg(%v) = %s, want the value of %s", in, got, want)
		}
	}
}
