package stresstest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sample is one look at a running Caddy.
type Sample struct {
	Time time.Time
	// RSSAnon is anonymous resident memory (the Go heap, stacks); RSSFile
	// is resident file-backed memory, mostly the store's memory mapping.
	// Both count against a container's memory limit.
	RSSAnon, RSSFile int64
	Goroutines       int
	OpenFiles        int
	StoreBytes       int64
}

// Take samples the process pid, its goroutines through Caddy's admin
// endpoint (/debug/pprof), and the size of the store file.
func Take(pid, adminPort int, storePath string) (Sample, error) {
	s := Sample{Time: time.Now()}
	var err error
	if s.RSSAnon, s.RSSFile, err = Memory(pid); err != nil {
		return s, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.OpenFiles = len(fds)
	if s.Goroutines, err = Goroutines(adminPort); err != nil {
		return s, err
	}
	info, err := os.Stat(storePath)
	if err != nil {
		return s, err
	}
	s.StoreBytes = info.Size()
	return s, nil
}

// Memory reads a process's resident memory from /proc/<pid>/smaps_rollup:
// anonymous, and file-backed (resident minus anonymous), in bytes.
func Memory(pid int) (anon, file int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	var rss int64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[2] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			rss = n << 10
		case "Anonymous:":
			anon = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no Rss in /proc/%d/smaps_rollup", pid)
	}
	return anon, rss - anon, nil
}

// Goroutines reads the number of goroutines from Caddy's admin endpoint.
func Goroutines(adminPort int) (int, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/goroutine?debug=1", adminPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	// "goroutine profile: total 42"
	f := strings.Fields(line)
	if len(f) < 4 || f[2] != "total" {
		return 0, fmt.Errorf("goroutine profile: unexpected first line %q", line)
	}
	return strconv.Atoi(f[3])
}
