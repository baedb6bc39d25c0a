//go:build !linux

package bolt

// faultCount counts nothing here: no write is seen reading from disk, so
// the store never counts as cold and only background work is rehearsed
// (rehearse.go).
type faultCount struct{}

func countFaults() faultCount     { return faultCount{} }
func (c *faultCount) stop() int64 { return 0 }
