package adminapi

import (
	"errors"
	"net/http"

	"github.com/caddy-sso/caddy-sso/account"
)

// tombstones serves /sso/tombstones: GET lists them (user=, idp=, paged
// by after= and limit=), DELETE lifts those of a deleted user (user=) or
// the one of an identity (idp= and subject=), and answers with what it
// lifted (account.LiftResult). A lift that finds none is a 404, so that a
// mistyped ID does not read as done.
func (h *Handler) tombstones(w http.ResponseWriter, r *http.Request) error {
	ctx, q := r.Context(), r.URL.Query()
	switch r.Method {
	case http.MethodGet:
		if err := params(q, "user", "idp", "after", "limit"); err != nil {
			return err
		}
		limit, err := PageSize(q.Get("limit"))
		if err != nil {
			return err
		}
		page, err := h.Accounts.ListTombstones(ctx, account.TombstoneQuery{UserID: q.Get("user"), IdP: q.Get("idp"),
			After: q.Get("after"), Limit: limit})
		return reply(w, page, err)
	case http.MethodDelete:
		if err := params(q, "user", "idp", "subject"); err != nil {
			return err
		}
		var res *account.LiftResult
		var err error
		switch user, idp, subject := q.Get("user"), q.Get("idp"), q.Get("subject"); {
		case user != "" && idp == "" && subject == "":
			res, err = h.Accounts.Lift(ctx, user, account.ByAdmin)
		case user == "" && idp != "" && subject != "":
			res, err = h.Accounts.LiftTombstone(ctx, idp, subject, account.ByAdmin)
		default:
			return errorf(http.StatusBadRequest, "lift the tombstones of a deleted user (user=), or one tombstone (idp= and subject=)")
		}
		var nf *account.TombstoneNotFoundError
		if errors.As(err, &nf) {
			return &Error{Status: http.StatusNotFound, Message: nf.Error(), Err: err}
		}
		return reply(w, res, err)
	}
	w.Header().Set("Allow", "GET, DELETE")
	return errorf(http.StatusMethodNotAllowed, "method not allowed: %s", r.Method)
}
