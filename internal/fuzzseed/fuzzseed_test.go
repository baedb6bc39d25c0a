package fuzzseed

import (
	"path/filepath"
	"reflect"
	"testing"
)

// Write and Read agree, for values that need quoting too.
func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	want := []any{"a\"b\n\x00\xff", []byte{0, 1, '"'}, true, ""}
	if err := Write(dir, "FuzzX", "seed", want...); err != nil {
		t.Fatal(err)
	}
	got, err := Read(filepath.Join(dir, "FuzzX", "seed"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := Write(dir, "FuzzX", "bad", 1.5); err == nil {
		t.Fatal("wrote an unsupported type")
	}
}
