package jsonwalk

import (
	"encoding/json"
	"testing"
)

func TestAt(t *testing.T) {
	var doc any
	if err := json.Unmarshal([]byte(`{"name":{"givenName":"Ada"},"emails":[{"value":"ada@example.com"}],"n":1}`), &doc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path []any
		want any
	}{
		{[]any{"name", "givenName"}, "Ada"},
		{[]any{"emails", 0, "value"}, "ada@example.com"},
		{[]any{"emails", 1, "value"}, nil},
		{[]any{"emails", -1}, nil},
		{[]any{"n", "x"}, nil},
		{[]any{"missing"}, nil},
		{[]any{1.5}, nil},
		{nil, doc},
	}
	for _, tt := range tests {
		got := At(doc, tt.path...)
		if m, ok := tt.want.(map[string]any); ok {
			if g, _ := got.(map[string]any); len(g) != len(m) {
				t.Errorf("At(%v) = %v, want the document", tt.path, got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("At(%v) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
