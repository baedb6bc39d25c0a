package gateway

import (
	"strings"

	"github.com/caddy-sso/caddy-sso/session"
)

// UserPlaceholders answers the {http.auth.user.*} placeholders of one
// identity, with the names Caddy's own authentication handler uses, for
// the rest of the route (README, "Placeholders"). The Caddy handler builds
// it once per session (session.Manager.Derive).
func UserPlaceholders(id *session.Identity) func(key string) (any, bool) {
	return func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, "http.auth.user.")
		if !ok {
			return nil, false
		}
		switch name {
		case "id":
			return id.Boxed(session.FieldUserID), true
		case "email":
			return id.Boxed(session.FieldEmail), true
		case "first_name":
			return id.Boxed(session.FieldFirstName), true
		case "last_name":
			return id.Boxed(session.FieldLastName), true
		case "groups":
			return id.Boxed(session.FieldGroups), true
		case "idp":
			return id.Boxed(session.FieldIdP), true
		}
		return nil, false
	}
}

// Placeholders are what an error page hands Caddy's error routes, as
// {http.auth.sso.<name>} (docs/pages.md): the page's name, its reference
// code (reason), status, title, message, IdP and whether the person is
// signed out in this browser.
func (e *PageError) Placeholders() map[string]any {
	return map[string]any{
		"page":       e.Name,
		"reason":     e.Code,
		"status":     e.Status,
		"title":      e.Title,
		"message":    e.Message,
		"idp":        e.IdP,
		"signed_out": e.SignedOut,
	}
}
