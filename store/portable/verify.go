package portable

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/caddy-sso/caddy-sso/store"
)

// Verify reads a whole backup without a store: it checks the header, that
// every line decodes, and that the end line's counts match the records,
// and returns the counts. `caddy sso backup` runs it on the file it wrote
// before putting it in place, and `restore` before touching the target.
func Verify(r io.Reader) (Counts, error) {
	_, c, err := Inspect(r)
	return c, err
}

// Inspect is Verify, and returns the backup's header too: `restore` says
// when the backup was taken (Header.Created), since restoring it undoes
// every change made after (docs/operations.md, "Restoring an older
// backup").
func Inspect(r io.Reader) (Header, Counts, error) {
	var h Header
	c, err := verify(r, nil, &h)
	return h, c, err
}

// verify is Verify, handing each secret to secret when it is not nil, and
// the header to head when it is not nil. A secret named twice makes the
// backup corrupt.
func verify(r io.Reader, secret func(name string, value []byte), head *Header) (Counts, error) {
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return Counts{}, fmt.Errorf("portable: not a gzip'd backup: %v: %w", err, ErrCorrupt)
	}
	dec := json.NewDecoder(gz)
	dec.DisallowUnknownFields()
	var c Counts
	var sawHead, end bool
	names := map[string]bool{}
	for n := 1; ; n++ {
		var l line
		err := dec.Decode(&l)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c, fmt.Errorf("portable: line %d: %v: %w", n, err, ErrCorrupt)
		}
		switch {
		case l.Header != nil:
			if sawHead {
				return c, fmt.Errorf("portable: line %d: a second header: %w", n, ErrCorrupt)
			}
			if h := l.Header; h.Format != Format || h.Version < 1 || h.Version > Version {
				return c, fmt.Errorf("portable: format %q version %d, this build reads %q up to version %d: %w",
					h.Format, h.Version, Format, Version, ErrCorrupt)
			}
			if head != nil {
				*head = *l.Header
			}
			sawHead = true
			continue
		case !sawHead:
			return c, fmt.Errorf("portable: line %d: no header line first: %w", n, ErrCorrupt)
		case end:
			return c, fmt.Errorf("portable: line %d: records after the end line: %w", n, ErrCorrupt)
		case l.End != nil:
			if *l.End != c {
				return c, fmt.Errorf("portable: the end line counts %+v, but the file held %+v: %w", *l.End, c, ErrCorrupt)
			}
			end = true
			continue
		}
		switch {
		case l.Secret != nil:
			if names[l.Secret.Name] {
				return c, fmt.Errorf("portable: line %d: secret %s a second time: %w", n, l.Secret.Name, ErrCorrupt)
			}
			names[l.Secret.Name] = true
			if secret != nil {
				secret(l.Secret.Name, l.Secret.Value)
			}
			c.Secrets++
		case l.User != nil:
			c.Users++
		case l.Group != nil:
			c.Groups++
		case l.Tombstone != nil:
			c.Tombstones++
		case l.Session != nil:
			c.Sessions++
			if len(l.Tokens) > 0 {
				c.SessionTokens++
			}
		case l.Consumed != nil:
			c.Consumed++
		case l.Audit != nil:
			c.AuditEvents++
		default:
			return c, fmt.Errorf("portable: line %d: an empty record: %w", n, ErrCorrupt)
		}
	}
	if !end {
		return c, fmt.Errorf("portable: no end line (truncated?): %w", ErrCorrupt)
	}
	return c, nil
}

// Backup writes st's backup to w, as Export does, and returns how many
// bytes it wrote (the admin API sends that in a trailer, for the client to
// check that it received everything).
func Backup(ctx context.Context, st store.Store, w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	_, err := Export(ctx, st, cw, ExportOptions{})
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
