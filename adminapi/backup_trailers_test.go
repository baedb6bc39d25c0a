package adminapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
)

// TestBackupFailureSaysSo: a backup that fails once its 200 is sent says
// so in its error trailer, so that `caddy sso backup` reports a failure on
// the server (and where its cause is), not a mere short stream; the log
// has the cause at ERROR.
func TestBackupFailureSaysSo(t *testing.T) {
	_, db := apiServer(t)
	core, logs := observer.New(zapcore.InfoLevel)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := adminapi.Handler{Accounts: &account.Service{Store: db}, Logger: zap.New(core),
			Backup: func(w io.Writer) (int64, error) {
				n, _ := w.Write([]byte("partial"))
				return int64(n), errors.New("disk on fire")
			}}
		if err := h.Serve(w, r); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	var buf strings.Builder
	_, err := testClient(srv).Backup(context.Background(), &buf)
	if err == nil || err.Error() != "the backup failed on the server: the backup failed (Caddy's log has the cause)" {
		t.Errorf("Client.Backup of a failed backup: %v", err)
	}
	if got := logs.FilterMessage("store backup failed").FilterField(zap.Int64("bytes", 7)).All(); len(got) != 1 || got[0].Level != zapcore.ErrorLevel {
		t.Errorf("want one ERROR line for the failure, with its 7 bytes; logs %v", logs.All())
	}
}

// TestClientBackupTrailers: Client.Backup takes a backup as complete only
// when the server's size trailer matches what arrived and no error trailer
// came; otherwise it says which of the two went wrong.
func TestClientBackupTrailers(t *testing.T) {
	for _, c := range []struct {
		name    string
		body    string
		cut     bool // the stream breaks after body
		trailer http.Header
		says    string // "" for a complete backup
	}{
		{"complete", "abc", false, http.Header{adminapi.BackupSizeTrailer: {"3"}}, ""},
		{"size differs", "abc", false, http.Header{adminapi.BackupSizeTrailer: {"4"}}, `the backup is incomplete: received 3 bytes, the server sent "4"`},
		{"no trailer", "abc", false, http.Header{}, `the backup is incomplete: received 3 bytes, the server sent ""`},
		{"error trailer", "abc", false, http.Header{adminapi.BackupErrorTrailer: {"it broke"}, adminapi.BackupSizeTrailer: {"3"}},
			"the backup failed on the server: it broke"},
		{"stream broken", "abc", true, http.Header{adminapi.BackupSizeTrailer: {"3"}}, "receiving the backup: unexpected EOF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := &adminapi.Client{Do: func(string, string) (*http.Response, error) {
				var body io.Reader = strings.NewReader(c.body)
				if c.cut {
					body = io.MultiReader(body, iotest.ErrReader(io.ErrUnexpectedEOF))
				}
				return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(body), Trailer: c.trailer}, nil
			}}
			var buf strings.Builder
			n, err := cl.Backup(context.Background(), &buf)
			switch {
			case n != int64(len(c.body)) || buf.String() != c.body:
				t.Errorf("copied %d bytes %q, want %q", n, buf.String(), c.body)
			case c.says == "" && err != nil:
				t.Errorf("a complete backup: %v", err)
			case c.says != "" && (err == nil || err.Error() != c.says):
				t.Errorf("Client.Backup: %v, want %q", err, c.says)
			}
		})
	}
}
