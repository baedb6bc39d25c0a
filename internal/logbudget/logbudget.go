// Package logbudget keeps log lines that unauthenticated clients can
// repeat at will from flooding the log: the first line per key each minute
// (or each Budget.Every) goes out at its level (WARN, or ERROR for a
// failure the operator must see), the rest at DEBUG, and the next line at
// that level says how many went to DEBUG in between (docs/security.md, "Unauthenticated traffic").
// Keys are fixed codes, configured names or user IDs; a Budget holds at
// most MaxKeys of them, and the DEBUG counts of keys it forgets to make
// room are summed onto its next line, never lost. The zero value is ready
// to use.
package logbudget

import (
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Window is how long a key's line at its level holds back the next one.
const Window = time.Minute

// MaxKeys bounds a Budget's memory when the keys are many (one per user):
// past it, keys whose window has ended are forgotten, and a new key beyond
// it while all are fresh logs at DEBUG, counted like the rest.
const MaxKeys = 4096

// Budget remembers when each key last went out at its level.
type Budget struct {
	// Every, when set (before first use), replaces Window for this
	// Budget: a line that stays true for as long as a user works (one per
	// user, not per attacker) repeated each minute is noise. Its repeat
	// count is then repeated_since_last, not repeated_last_minute.
	Every time.Duration

	mu   sync.Mutex
	keys map[string]*entry
	// The same entries in the order of their times, oldest first: forget
	// takes those whose window has ended off the front and stops at the
	// first that has not, so that a take costs the same however many keys
	// are held. Once MaxKeys fresh keys are held, every line of a new key
	// (a refusal from yet another address: docs/security.md,
	// "Unauthenticated traffic") calls forget, which must not look at
	// them all each time.
	oldest, newest *entry
	// looked counts the entries forget has looked at, all told: one per
	// key it forgot and one more per call at most. The tests hold it to
	// that.
	looked int
	// The DEBUG lines of forgotten keys (and of keys that found no room),
	// and which keys they were: reported by the next line that goes out
	// at its level. A source that finds no room line after line is one
	// key, not one per line, so the keys are a set, bounded like keys;
	// past MaxKeys of them, foldedOverflow counts lines of keys not in it
	// (each as one more key: an upper bound, never an undercount).
	foldedLines    int
	foldedKeys     map[string]struct{}
	foldedOverflow int
}

type entry struct {
	key        string
	at         time.Time // when the key last went out at its level
	repeated   int       // lines sent to DEBUG since
	prev, next *entry    // in Budget's time order
}

// Take reports whether a line for key may go out at its level at now, and
// if so counts it.
func (b *Budget) Take(key string, now time.Time) bool {
	ok, _ := b.take(key, now)
	return ok
}

// take is Take, with the fields that line carries: how many lines of key
// went to DEBUG since its last one, and those of forgotten keys.
func (b *Budget) take(key string, now time.Time) (bool, []zap.Field) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.keys[key]; ok {
		if now.Sub(e.at) < b.window() {
			e.repeated++
			return false, nil
		}
		var fields []zap.Field
		if e.repeated > 0 {
			fields = append(fields, zap.Int(b.repeatedField(), e.repeated))
		}
		b.unlink(e)
		e.at, e.repeated = now, 0
		b.insert(e)
		return true, b.folded(fields)
	}
	if b.keys == nil {
		b.keys = make(map[string]*entry)
	}
	if len(b.keys) >= MaxKeys {
		b.forget(now)
		if len(b.keys) >= MaxKeys {
			b.foldedLines++
			b.foldKey(key)
			return false, nil
		}
	}
	e := &entry{key: key, at: now}
	b.keys[key] = e
	b.insert(e)
	return true, b.folded(nil)
}

// window is how long a key's line at its level holds back the next one.
func (b *Budget) window() time.Duration {
	if b.Every > 0 {
		return b.Every
	}
	return Window
}

// repeatedField names the count of a key's lines sent to DEBUG since its
// last one at its level: its documented name for the minute's window.
func (b *Budget) repeatedField() string {
	if b.window() == Window {
		return "repeated_last_minute"
	}
	return "repeated_since_last"
}

// forget drops the keys whose window has ended, keeping count of their
// lines sent to DEBUG: the front of the time order, up to the first key
// whose window has not. Called with b.mu held.
func (b *Budget) forget(now time.Time) {
	for e := b.oldest; e != nil; e = b.oldest {
		b.looked++
		if now.Sub(e.at) < b.window() {
			return
		}
		if e.repeated > 0 {
			b.foldedLines += e.repeated
			b.foldKey(e.key)
		}
		b.unlink(e)
		delete(b.keys, e.key)
	}
}

// insert puts e in the time order, after the last entry not later than
// e.at. Callers take their time before the lock, so times arrive nearly in
// order and the walk from the newest end is a step or two (time.Now's
// monotonic reading keeps a step of the wall clock from reordering them);
// it keeps the order exact, and so forget, whatever times a caller passes.
// Called with b.mu held.
func (b *Budget) insert(e *entry) {
	after := b.newest
	for after != nil && after.at.After(e.at) {
		after = after.prev
	}
	e.prev = after
	if after == nil {
		e.next, b.oldest = b.oldest, e
	} else {
		e.next, after.next = after.next, e
	}
	if e.next == nil {
		b.newest = e
	} else {
		e.next.prev = e
	}
}

// unlink takes e out of the time order. Called with b.mu held.
func (b *Budget) unlink(e *entry) {
	if e.prev == nil {
		b.oldest = e.next
	} else {
		e.prev.next = e.next
	}
	if e.next == nil {
		b.newest = e.prev
	} else {
		e.next.prev = e.prev
	}
	e.prev, e.next = nil, nil
}

// foldKey notes key among those whose DEBUG lines are folded into the
// next line. Called with b.mu held.
func (b *Budget) foldKey(key string) {
	if _, ok := b.foldedKeys[key]; ok {
		return
	}
	if len(b.foldedKeys) >= MaxKeys {
		b.foldedOverflow++
		return
	}
	if b.foldedKeys == nil {
		b.foldedKeys = make(map[string]struct{})
	}
	b.foldedKeys[key] = struct{}{}
}

// folded adds to fields the counts of forgotten keys, once: how many
// distinct keys (other_keys_not_logged) and how many of their lines
// (other_lines_not_logged) went to DEBUG only. Called with b.mu held.
func (b *Budget) folded(fields []zap.Field) []zap.Field {
	if b.foldedLines == 0 {
		return fields
	}
	fields = append(fields, zap.Int("other_keys_not_logged", len(b.foldedKeys)+b.foldedOverflow), zap.Int("other_lines_not_logged", b.foldedLines))
	b.foldedLines, b.foldedKeys, b.foldedOverflow = 0, nil, 0
	return fields
}

// Log logs msg at lvl when key's budget allows, at DEBUG otherwise.
func (b *Budget) Log(log *zap.Logger, lvl zapcore.Level, key string, now time.Time, msg string, fields ...zap.Field) {
	ok, extra := b.take(key, now)
	if !ok {
		log.Debug(msg, fields...)
		return
	}
	log.Log(lvl, msg, slices.Concat(fields, extra)...)
}

// Warn logs msg at WARN when key's budget allows, at DEBUG otherwise.
func (b *Budget) Warn(log *zap.Logger, key string, now time.Time, msg string, fields ...zap.Field) {
	b.Log(log, zapcore.WarnLevel, key, now, msg, fields...)
}

// Error logs msg at ERROR when key's budget allows, at DEBUG otherwise.
func (b *Budget) Error(log *zap.Logger, key string, now time.Time, msg string, fields ...zap.Field) {
	b.Log(log, zapcore.ErrorLevel, key, now, msg, fields...)
}

// Info logs msg at INFO when key's budget allows, at DEBUG otherwise.
func (b *Budget) Info(log *zap.Logger, key string, now time.Time, msg string, fields ...zap.Field) {
	b.Log(log, zapcore.InfoLevel, key, now, msg, fields...)
}
