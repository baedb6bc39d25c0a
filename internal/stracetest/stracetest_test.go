package stracetest

import (
	"strings"
	"testing"
)

func TestLinesJoinsResumedCalls(t *testing.T) {
	raw := "11 openat(AT_FDCWD, \"/d\", O_RDONLY <unfinished ...>\n" +
		"12    write(1, \"x\", 1) = 1\n" +
		"11 <... openat resumed>) = 7\n" +
		"11 fsync(7 <unfinished ...>\n" +
		"12 <... futex resumed>) = 0\n" +
		"11 <... fsync resumed>) = 0"
	want := []string{`11 openat(AT_FDCWD, "/d", O_RDONLY) = 7`, `12    write(1, "x", 1) = 1`, "11 fsync(7) = 0", "12 <... futex resumed>) = 0"}
	if got := Lines(raw); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
