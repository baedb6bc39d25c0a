package idp

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrFormTooLarge is ReadForm's error for a body over its limit.
var ErrFormTooLarge = errors.New("form body too large")

// ReadForm parses r's form as every endpoint anyone can post to must: the
// body is capped at limit bytes (http.MaxBytesReader) before anything reads
// it, and only an application/x-www-form-urlencoded body is parsed
// (r.ParseForm): never multipart, whose file parts ParseMultipartForm
// spools to temporary files, nor any other type, whose body stays unread.
// r.Form then holds the query's fields and the body's, r.PostForm the
// body's. A body over limit fails with ErrFormTooLarge, and the server
// closes the connection rather than read the rest of it.
func ReadForm(w http.ResponseWriter, r *http.Request, limit int64) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	err := r.ParseForm()
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		return fmt.Errorf("%w: over %d bytes", ErrFormTooLarge, limit)
	}
	if err != nil {
		return fmt.Errorf("reading the form: %w", err)
	}
	return nil
}
