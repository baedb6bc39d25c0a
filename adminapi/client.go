package adminapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

// Client calls the admin API.
type Client struct {
	// Do sends one request and returns the response, or an error for a
	// status of 400 or more (as caddycmd.AdminAPIRequest does, which
	// finds Caddy's admin endpoint however it listens).
	Do func(method, uri string) (*http.Response, error)
}

func (c *Client) call(method, uri string, out any) error {
	resp, err := c.Do(method, uri)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the admin API's answer: %w", err)
	}
	return nil
}

func userURI(id string, rest ...string) string {
	return Prefix + "users/" + strings.Join(append([]string{url.PathEscape(id)}, rest...), "/")
}

// query encodes the non-empty values.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

func itoa(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// ListUsers is GET /sso/users.
func (c *Client) ListUsers(_ context.Context, q, after string, limit int) (*account.UsersPage, error) {
	page := new(account.UsersPage)
	return page, c.call(http.MethodGet, Prefix+"users"+query("query", q, "after", after, "limit", itoa(limit)), page)
}

// User is GET /sso/users/{id}; after and limit page the sessions.
func (c *Client) User(_ context.Context, id, after string, limit int) (*account.UserDetail, error) {
	d := new(account.UserDetail)
	return d, c.call(http.MethodGet, userURI(id)+query("after", after, "limit", itoa(limit)), d)
}

// Deactivate is POST /sso/users/{id}/disable.
func (c *Client) Deactivate(_ context.Context, id string) (*store.User, error) {
	u := new(store.User)
	return u, c.call(http.MethodPost, userURI(id, "disable"), u)
}

// Activate is POST /sso/users/{id}/enable.
func (c *Client) Activate(_ context.Context, id string) (*store.User, error) {
	u := new(store.User)
	return u, c.call(http.MethodPost, userURI(id, "enable"), u)
}

// Delete is DELETE /sso/users/{id}.
func (c *Client) Delete(_ context.Context, id string) error {
	var out map[string]string
	return c.call(http.MethodDelete, userURI(id), &out)
}

// EndSessions is POST /sso/users/{id}/sessions/revoke.
func (c *Client) EndSessions(_ context.Context, id string) (int, error) {
	var out struct {
		Revoked int `json:"revoked"`
	}
	err := c.call(http.MethodPost, userURI(id, "sessions", "revoke"), &out)
	return out.Revoked, err
}

// Audit is GET /sso/audit.
func (c *Client) Audit(_ context.Context, q store.AuditQuery) (*account.AuditPage, error) {
	var since, until, after string
	if !q.Since.IsZero() {
		since = q.Since.Format(time.RFC3339Nano)
	}
	if !q.Until.IsZero() {
		until = q.Until.Format(time.RFC3339Nano)
	}
	if q.After > 0 {
		after = strconv.FormatUint(q.After, 10)
	}
	page := new(account.AuditPage)
	return page, c.call(http.MethodGet, Prefix+"audit"+query("user", q.UserID, "type", q.Type, "since", since,
		"until", until, "after", after, "limit", itoa(q.Limit)), page)
}

// Tombstones is GET /sso/tombstones.
func (c *Client) Tombstones(_ context.Context, q account.TombstoneQuery) (*account.TombstonesPage, error) {
	page := new(account.TombstonesPage)
	return page, c.call(http.MethodGet, Prefix+"tombstones"+query("user", q.UserID, "idp", q.IdP, "after", q.After,
		"limit", itoa(q.Limit)), page)
}

// Lift is DELETE /sso/tombstones?user=: it lifts every tombstone of the
// deleted user.
func (c *Client) Lift(_ context.Context, deletedUserID string) (*account.LiftResult, error) {
	res := new(account.LiftResult)
	return res, c.call(http.MethodDelete, Prefix+"tombstones"+query("user", deletedUserID), res)
}

// LiftTombstone is DELETE /sso/tombstones?idp=&subject=: it lifts one
// tombstone (and those that follow it).
func (c *Client) LiftTombstone(_ context.Context, idp, subject string) (*account.LiftResult, error) {
	res := new(account.LiftResult)
	return res, c.call(http.MethodDelete, Prefix+"tombstones"+query("idp", idp, "subject", subject), res)
}

// Backup is GET /sso/backup: it copies the backup to w and checks the
// trailers that say whether it is complete.
func (c *Client) Backup(_ context.Context, w io.Writer) (int64, error) {
	resp, err := c.Do(http.MethodGet, Prefix+"backup")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("receiving the backup: %w", err)
	}
	if msg := resp.Trailer.Get(BackupErrorTrailer); msg != "" {
		return n, fmt.Errorf("the backup failed on the server: %s", msg)
	}
	if want := resp.Trailer.Get(BackupSizeTrailer); want != strconv.FormatInt(n, 10) {
		return n, fmt.Errorf("the backup is incomplete: received %d bytes, the server sent %q", n, want)
	}
	return n, nil
}

// Check is GET /sso/check: the integrity check of the running instance's
// store.
func (c *Client) Check(_ context.Context) (*StoreCheck, error) {
	var sc StoreCheck
	return &sc, c.call(http.MethodGet, Prefix+"check", &sc)
}
