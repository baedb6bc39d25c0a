package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// connLost reports an error that ended the connection it came on without
// any sign of a timeout: the server ended the session (a FATAL or PANIC
// error, or SQLSTATE class 08 connection_exception or 57P0x, as
// pg_terminate_backend, a shutdown, idle_in_transaction_session_timeout
// send), or the connection broke (EOF, a reset, a broken pipe, a
// connection pgconn had already closed). pgconn closes the connection on
// all of these, and the server ends its backend, rolling back any open
// transaction. What was sent before COMMIT on it thus changed nothing, and
// may be sent again on another connection (begin, run); a COMMIT may have
// taken effect (commitUnknown).
//
// A timeout is not a lost connection: the server may still be running
// the statement, and sending it again would make a caller wait the bound
// many times over. Neither is a refused connection attempt
// (pgconn.ConnectError): waitRefused waits those out, and a connection
// that cannot be made will not be made by asking again at once.
func connLost(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err),
		errors.As(err, &ne) && ne.Timeout(), errors.As(err, &ce):
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		severity := pe.SeverityUnlocalized // Severity is in the server's language
		if severity == "" {
			severity = pe.Severity
		}
		return severity == "FATAL" || severity == "PANIC" ||
			strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P0")
	}
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
