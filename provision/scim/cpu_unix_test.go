//go:build unix

package scim_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used: on a shared machine
// the CPU a request costs wobbles less than the time it takes.
func processCPU() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
