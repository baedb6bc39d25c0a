package stresstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// SCIM is a SCIM 2.0 client of the gateway, doing what Entra ID and Okta
// do to users. Each call returns the HTTP status with the error of a
// request that got no answer, so that a caller can tell acknowledged
// writes from the rest.
type SCIM struct {
	Base   string // .../scim/v2
	Token  string
	Client *http.Client
}

// SCIMUser is the part of a SCIM user these runs read back.
type SCIMUser struct {
	ID         string `json:"id"`
	UserName   string `json:"userName"`
	ExternalID string `json:"externalId"`
	Active     bool   `json:"active"`
}

func (s *SCIM) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Base+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/scim+json")
	req.Header.Set("Accept", "application/scim+json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		// The status line arrived but not the whole answer: the write may
		// or may not have committed; the caller does not count it.
		return 0, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %.300s", method, path, resp.Status, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

const scimUserSchema = "urn:ietf:params:scim:schemas:core:2.0:User"

// CreateUser creates an active user and returns it as stored.
func (s *SCIM) CreateUser(ctx context.Context, userName, externalID, email string) (*SCIMUser, int, error) {
	u := new(SCIMUser)
	status, err := s.do(ctx, http.MethodPost, "/Users", map[string]any{
		"schemas": []string{scimUserSchema}, "userName": userName, "externalId": externalID, "active": true,
		"name":   map[string]string{"givenName": "Scim", "familyName": externalID},
		"emails": []map[string]any{{"value": email, "type": "work", "primary": true}},
	}, u)
	return u, status, err
}

// SetActive deactivates or reactivates a user, with the PATCH Okta and
// Entra send.
func (s *SCIM) SetActive(ctx context.Context, id string, active bool) (int, error) {
	return s.do(ctx, http.MethodPatch, "/Users/"+url.PathEscape(id), map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "active", "value": active}},
	}, nil)
}

// User reads a user.
func (s *SCIM) User(ctx context.Context, id string) (*SCIMUser, int, error) {
	u := new(SCIMUser)
	status, err := s.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(id), nil, u)
	return u, status, err
}

// FindByUserName runs the `userName eq` filter every IdP sends before a
// create, and returns the users found.
func (s *SCIM) FindByUserName(ctx context.Context, userName string) ([]SCIMUser, int, error) {
	var list struct {
		Resources []SCIMUser `json:"Resources"`
	}
	q := url.Values{"filter": {fmt.Sprintf("userName eq %q", userName)}}
	status, err := s.do(ctx, http.MethodGet, "/Users?"+q.Encode(), nil, &list)
	return list.Resources, status, err
}

// DeleteUser deletes a user.
func (s *SCIM) DeleteUser(ctx context.Context, id string) (int, error) {
	return s.do(ctx, http.MethodDelete, "/Users/"+url.PathEscape(id), nil, nil)
}
