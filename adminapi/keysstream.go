package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
)

// The answer of POST /sso/keys/rotate and /sso/keys/finish streams, as
// JSON Lines (one KeysLine each), because the re-seal of the sessions'
// tokens that follows the rotation takes minutes on a large store, longer
// than a client waits for an answer that says nothing (the CLI's
// --timeout, docs/operations.md): the status and the first line go out as
// soon as the rotation's one store transaction has committed, then a
// progress line at most every keysProgressEvery while the re-seal runs,
// and last the report, or the error that stopped the re-seal. A client that
// reads only the last line gets the outcome. An error before the commit
// is an error status, as for every endpoint.
const keysProgressEvery = 500 * time.Millisecond

// KeysLine is one line of the keys endpoints' answer; one field is set.
type KeysLine struct {
	// Committed, the first line: the store transaction has committed, and
	// this is the report so far (no Tokens yet). From then on the keys are
	// rotated whatever becomes of the re-seal.
	Committed *keys.Report `json:"committed,omitempty"`
	// Progress: where the re-seal is.
	Progress *KeysProgress `json:"progress,omitempty"`
	// Report, the last line when all went well.
	Report *keys.Report `json:"report,omitempty"`
	// Error, the last line when the re-seal stopped part-way: the previous
	// tokens key stays, opening every blob not sealed again yet, and
	// /sso/keys/finish (again, if it was the finish) finishes it.
	Error string `json:"error,omitempty"`
}

// KeysProgress is session.ResealProgress on the wire.
type KeysProgress struct {
	Pass     int `json:"pass"`     // 1, then 2 for the final pass
	Scanned  int `json:"scanned"`  // sessions read in this pass
	Sessions int `json:"sessions"` // sessions in the store when the pass began
	Resealed int `json:"resealed"` // blobs sealed again, in all passes
}

// rotateKeys rotates the store's keys (package keys), or finishes a
// rotation, streaming its progress and then its keys.Report (KeysLine).
// The re-seal runs within the request: a client that goes away, or stops
// reading for the backup's stall timeout (DefaultBackupStall: a write the
// client does not take holds the re-seal), stops it, leaving the previous
// tokens key, and the finish finishes it (keys.ErrResealUnfinished). A
// rotation of the tokens key before the finish of the one before is a 409
// (keys.ErrFinishFirst), nothing rotated.
func (h *Handler) rotateKeys(w http.ResponseWriter, r *http.Request, finish bool) error {
	q := r.URL.Query()
	known := []string{"only"}
	if finish {
		known = []string{"now"}
	}
	if err := params(q, known...); err != nil {
		return err
	}
	only, err := keys.ParseKinds(q["only"])
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Message: err.Error()}
	}
	early := false
	if v := q.Get("now"); v != "" {
		if early, err = strconv.ParseBool(v); err != nil {
			return &Error{Status: http.StatusBadRequest, Message: "now: want true or false, got " + strconv.Quote(v)}
		}
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	s := &keysStream{h: h, w: w, rc: http.NewResponseController(w), cancel: cancel}
	lastLog := time.Now()
	opt := keys.Options{Only: only, Early: early, By: account.ByAdmin, Via: account.ViaAdminAPI, Remote: r.RemoteAddr, Now: h.Now,
		Committed: s.start,
		Reseal: session.ResealOptions{Batch: h.Reseal.Batch, Rest: h.Reseal.Rest, Progress: func(p session.ResealProgress) {
			if time.Since(lastLog) >= 10*time.Second {
				lastLog = time.Now()
				h.log().Info("re-sealing the sessions' tokens", zap.Int("pass", p.Pass), zap.Int("read", p.Scanned),
					zap.Int("sessions", p.Sessions), zap.Int("resealed", p.Resealed))
			}
			s.progress(p)
		}}}
	op := keys.Rotate
	if finish {
		op = keys.Finish
	}
	rep, err := op(ctx, h.Accounts.Store, opt)
	if err != nil {
		// Why the re-seal stopped: the client's end, which net/http has
		// usually cancelled the request for already (so the context's
		// cause says only "canceled"), or the context's own cause.
		cause := s.gone
		if cause == nil {
			cause = context.Cause(ctx)
		}
		if cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		h.log().Error("store key rotation failed", zap.Bool("finish", finish), zap.Error(err))
		msg := "internal error: the store failed (Caddy's log has the cause)"
		if errors.Is(err, keys.ErrResealUnfinished) {
			msg = "the keys were rotated, but " + keys.ErrResealUnfinished.Error() + " (Caddy's log has the cause)"
			if finish {
				msg = "the finish stopped: " + keys.ErrResealUnfinished.Error() + " (Caddy's log has the cause)"
			}
		}
		if errors.Is(err, keys.ErrTooEarly) {
			return &Error{Status: http.StatusConflict, Message: err.Error() + "; nothing was deleted", Err: err}
		}
		if errors.Is(err, keys.ErrFinishFirst) {
			return &Error{Status: http.StatusConflict, Message: keys.ErrFinishFirst.Error() + "; nothing was rotated", Err: err}
		}
		if !s.started { // the transaction failed: nothing changed
			return &Error{Status: http.StatusInternalServerError, Message: msg, Err: err}
		}
		s.send(KeysLine{Error: msg})
		return nil // too late for a status: the last line says it
	}
	h.log().Info("store keys rotated", zap.Bool("finish", finish), zap.Any("report", rep))
	s.send(KeysLine{Report: rep})
	return nil
}

// keysStream writes the keys endpoints' answer, from the re-seal's
// goroutine. A write renews the connection's write deadline first, as the
// backup's do (stallWriter): Caddy's admin server sets none, and a client
// that takes nothing would otherwise hold the re-seal, once the socket's
// buffers are full, for good. A write that fails stops the re-seal.
type keysStream struct {
	h       *Handler
	w       http.ResponseWriter
	rc      *http.ResponseController
	cancel  context.CancelCauseFunc
	started bool
	failed  bool
	gone    error        // why a write failed (send)
	stall   bool         // the connection takes a write deadline
	last    time.Time    // of the last line
	sent    KeysProgress // the last progress line
}

// start sends the status and the first line, once the rotation committed.
func (s *keysStream) start(rep keys.Report) {
	s.started = true
	s.stall = s.rc.SetWriteDeadline(time.Now().Add(s.h.backupStall())) == nil
	if !s.stall {
		s.h.log().Warn("store key rotation without a stall timeout: the connection cannot set a write deadline")
	}
	s.w.Header().Set("Content-Type", "application/jsonl")
	s.w.WriteHeader(http.StatusOK)
	s.send(KeysLine{Committed: &rep})
}

// progress sends where the re-seal is, at most every keysProgressEvery,
// and at the end of each pass (once: a pass that ends on a full batch
// reports its end twice).
func (s *keysStream) progress(p session.ResealProgress) {
	kp := KeysProgress(p)
	if kp == s.sent || time.Since(s.last) < keysProgressEvery && p.Scanned < p.Sessions {
		return
	}
	s.sent = kp
	s.send(KeysLine{Progress: &kp})
}

func (s *keysStream) send(line KeysLine) {
	if s.failed {
		return
	}
	s.last = time.Now()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(line)
	if err == nil && s.stall {
		err = s.rc.SetWriteDeadline(time.Now().Add(s.h.backupStall()))
	}
	if err == nil {
		_, err = s.w.Write(b.Bytes())
	}
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		s.failed = true
		s.h.log().Warn("store key rotation: the client takes no more of the answer", zap.Error(err))
		s.gone = fmt.Errorf("the client took no more of the answer: %w", err)
		s.cancel(s.gone)
	}
}

// KeysWatch receives what the keys endpoints stream before their report;
// a nil func ignores it.
type KeysWatch struct {
	// Committed: the rotation's store transaction has committed, with the
	// report so far.
	Committed func(keys.Report)
	Progress  func(session.ResealProgress)
}

// RotateKeys is POST /sso/keys/rotate: the running instance rotates the
// keys of only (every kind when empty), and re-seals the sessions' tokens,
// which watch follows, before the report.
func (c *Client) RotateKeys(_ context.Context, only []keys.Kind, watch KeysWatch) (*keys.Report, error) {
	v := url.Values{}
	for _, k := range only {
		v.Add("only", string(k))
	}
	uri := Prefix + "keys/rotate"
	if len(v) > 0 {
		uri += "?" + v.Encode()
	}
	return c.keys(uri, watch)
}

// FinishKeys is POST /sso/keys/finish; early finishes before the time
// the rotation gave (keys.Options.Early).
func (c *Client) FinishKeys(_ context.Context, early bool, watch KeysWatch) (*keys.Report, error) {
	uri := Prefix + "keys/finish"
	if early {
		uri += "?now=true"
	}
	return c.keys(uri, watch)
}

// keys reads a keys endpoint's stream (KeysLine) to its last line. An
// answer that stops before it (the connection lost, the client's timeout)
// after the commit says what is done already, and what to do.
func (c *Client) keys(uri string, watch KeysWatch) (*keys.Report, error) {
	resp, err := c.Do(http.MethodPost, uri)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var committed *keys.Report
	for {
		var line KeysLine
		if err := dec.Decode(&line); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the answer ended before its report")
			}
			switch {
			case committed != nil && committed.TokensPreviousKept:
				return nil, fmt.Errorf("%s, but the answer stopped before the re-seal of the sessions' tokens ended: %w; "+
					"the previous tokens key, kept until the finish, still opens every session's tokens: "+
					"'caddy sso keys finish' after %s seals the rest and deletes it",
					committedWhat(committed), err, committed.FinishAfter.Local().Format(keys.TimeLayout))
			case committed != nil && committed.TokensPreviousFound:
				return nil, fmt.Errorf("%s, but the answer stopped before the re-seal of the sessions' tokens ended: %w; "+
					"the previous tokens key still opens every session's tokens: run the same command again to finish",
					committedWhat(committed), err)
			case committed != nil:
				return nil, fmt.Errorf("%s, but the answer stopped before its report: %w", committedWhat(committed), err)
			}
			return nil, fmt.Errorf("reading the admin API's answer: %w", err)
		}
		switch {
		case line.Report != nil:
			return line.Report, nil
		case line.Error != "":
			return nil, errors.New(line.Error)
		case line.Committed != nil:
			committed = line.Committed
			if watch.Committed != nil {
				watch.Committed(*line.Committed)
			}
		case line.Progress != nil:
			if watch.Progress != nil {
				watch.Progress(session.ResealProgress(*line.Progress))
			}
		}
	}
}

// committedWhat says what a committed rotation (or finish) did already.
func committedWhat(rep *keys.Report) string {
	switch {
	case len(rep.Rotated) > 0:
		names := make([]string, len(rep.Rotated))
		for i, k := range rep.Rotated {
			names[i] = string(k)
		}
		return "the keys are rotated (" + strings.Join(names, ", ") + ")"
	case rep.FlowPreviousDeleted:
		return "the previous flow-cookie-key is deleted"
	case rep.TokensPreviousFound:
		return "the finish began"
	}
	return "the change is committed"
}
