package bolt

import (
	"runtime"
	"syscall"
)

// faultCount counts the page faults that read from disk on one thread. A
// fault is taken by the thread that touches the page, so with the
// goroutine locked to its thread a transaction's count is its own,
// whatever else the process reads at the time.
type faultCount struct {
	start   int64
	stopped bool
}

// countFaults locks the calling goroutine to its thread until stop.
func countFaults() faultCount {
	runtime.LockOSThread()
	return faultCount{start: threadMajorFaults()}
}

// stop returns the count and unlocks the thread; later calls return 0.
func (c *faultCount) stop() int64 {
	if c.stopped {
		return 0
	}
	c.stopped = true
	n := threadMajorFaults() - c.start
	runtime.UnlockOSThread()
	return n
}

func threadMajorFaults() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return int64(ru.Majflt)
}
