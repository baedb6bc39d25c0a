// Package logbudget keeps log lines that unauthenticated clients can
// repeat at will from flooding the log: the first line per key each minute
// goes out at WARN, the rest at DEBUG (docs/security.md, "Unauthenticated
// traffic"). Keys are fixed codes and configured names, so a Budget stays
// small; the zero value is ready to use.
package logbudget

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// Window is how long a key's WARN line holds back the next one.
const Window = time.Minute

// Budget remembers when each key last went out at WARN.
type Budget struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// Take reports whether a line for key may go out at WARN at now, and if so
// counts it.
func (b *Budget) Take(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.last[key]; ok && now.Sub(t) < Window {
		return false
	}
	if b.last == nil {
		b.last = make(map[string]time.Time)
	}
	b.last[key] = now
	return true
}

// Warn logs msg at WARN when key's budget allows, at DEBUG otherwise.
func (b *Budget) Warn(log *zap.Logger, key string, now time.Time, msg string, fields ...zap.Field) {
	if b.Take(key, now) {
		log.Warn(msg, fields...)
		return
	}
	log.Debug(msg, fields...)
}
