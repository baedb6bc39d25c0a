package bolt

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// pair encodes (a, b) as uvarint(len(a)) | a | b: unambiguous for any
// strings, and pair(a, "") is a prefix of exactly the keys that start with a.
func pair(a, b string) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(a)+len(b))
	k = binary.AppendUvarint(k, uint64(len(a)))
	k = append(k, a...)
	return append(k, b...)
}

// unpair splits a pair key; ok is false for a key pair did not make.
func unpair(k []byte) (a, b string, ok bool) {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n {
		return "", "", false
	}
	return string(k[w : w+int(n)]), string(k[w+int(n):]), true
}

func linkKey(l store.Link) []byte { return pair(l.IdP, l.Subject) }

// emailKey folds so that lookups ignore case (store.FoldName); the stored
// user keeps the spelling the IdP sent.
func emailKey(email string) []byte { return []byte(store.FoldName(email)) }

// userNameKey folds like emailKey: SCIM's userName is not case-exact.
func userNameKey(name string) []byte { return []byte(store.FoldName(name)) }

// groupNameKey folds the display name: two groups of one IdP whose names
// differ only in case would be indistinguishable in a groups header.
func groupNameKey(idp, name string) []byte { return pair(idp, store.FoldName(name)) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func auditUserKey(userID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(pair(userID, ""), seq)
}

// Times are stored as 8 big-endian bytes that sort like the times they
// encode: unix nanoseconds with the sign bit flipped. The zero time is the
// smallest value (it sorts first, and an expiry that was never set is
// always past, as time.Time{}.Before(now) is); times beyond what int64
// nanoseconds hold (years before 1678 or after 2262) are clamped.
const zeroTime uint64 = 0

func encTime(t time.Time) uint64 {
	if t.IsZero() {
		return zeroTime
	}
	var n int64
	switch {
	case t.Year() < 1678:
		n = math.MinInt64 + 1
	case t.Year() > 2261:
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return uint64(n) ^ 1<<63
}

func decTime(v uint64) time.Time {
	if v == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, int64(v^1<<63)).UTC()
}

// appendMostly returns b set up for keys that mostly arrive in order
// (time-ordered indexes: new entries carry the latest times). bbolt splits
// a full page in half by default, which leaves such an index half empty;
// splitting near the top keeps its pages nearly full.
func appendMostly(b bucket) bucket {
	b.FillPercent = 0.9
	return b
}

// timeKey is a time-ordered index key: the time, then the record's key.
func timeKey(t uint64, rest string) []byte {
	k := make([]byte, 8, 8+len(rest))
	binary.BigEndian.PutUint64(k, t)
	return append(k, rest...)
}

// newID returns a random 128-bit ID in lowercase hex that is not yet a
// key of b (the users or the groups).
func newID(b bucket) (string, error) {
	for {
		var r [16]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", fmt.Errorf("bolt: random id: %w", err)
		}
		if id := hex.EncodeToString(r[:]); b.Get([]byte(id)) == nil {
			return id, nil
		}
	}
}
