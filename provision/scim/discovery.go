package scim

import (
	"net/http"
	"strings"
)

// serviceProviderConfig describes what this server does (RFC 7643 5).
// Entra and Okta read it at "test connection"; patch and filter must say
// supported for them to use PATCH and filtered GETs.
func (h *Handler) serviceProviderConfig(r *http.Request) map[string]any {
	return map[string]any{
		"schemas":          []any{urnSPConfig},
		"documentationUri": "https://github.com/caddy-sso/caddy-sso",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": MaxResults},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": false},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type": "oauthbearertoken", "name": "Bearer token", "primary": true,
			"description": "The bearer token configured for this identity provider in the sso_scim block.",
		}},
		"meta": map[string]any{
			"resourceType": "ServiceProviderConfig",
			"location":     h.baseURL(r) + "/ServiceProviderConfig",
		},
	}
}

func (h *Handler) resourceTypeDoc(r *http.Request, rt *resourceType) map[string]any {
	ext := []any{}
	for _, s := range rt.Extensions {
		ext = append(ext, map[string]any{"schema": s.ID, "required": false})
	}
	return map[string]any{
		"schemas":          []any{urnResourceType},
		"id":               rt.Name,
		"name":             rt.Name,
		"endpoint":         rt.Endpoint,
		"description":      rt.Core.Description,
		"schema":           rt.Core.ID,
		"schemaExtensions": ext,
		"meta": map[string]any{
			"resourceType": "ResourceType",
			"location":     h.baseURL(r) + "/ResourceTypes/" + rt.Name,
		},
	}
}

func (h *Handler) resourceTypes(r *http.Request, name string) (any, error) {
	all := []*resourceType{h.users, h.groups}
	if name == "" {
		var out []any
		for _, rt := range all {
			out = append(out, h.resourceTypeDoc(r, rt))
		}
		return listResponse(len(out), 1, out), nil
	}
	for _, rt := range all {
		if strings.EqualFold(rt.Name, name) {
			return h.resourceTypeDoc(r, rt), nil
		}
	}
	return nil, notFound("ResourceType", name)
}

func (h *Handler) schemaDoc(r *http.Request, s *schema) map[string]any {
	return map[string]any{
		"schemas":     []any{urnSchema},
		"id":          s.ID,
		"name":        s.Name,
		"description": s.Description,
		"attributes":  s.Attrs,
		"meta": map[string]any{
			"resourceType": "Schema",
			"location":     h.baseURL(r) + "/Schemas/" + s.ID,
		},
	}
}

func (h *Handler) schemas(r *http.Request, id string) (any, error) {
	all := []*schema{h.users.Core, h.users.Extensions[0], h.groups.Core}
	if id == "" {
		var out []any
		for _, s := range all {
			out = append(out, h.schemaDoc(r, s))
		}
		return listResponse(len(out), 1, out), nil
	}
	for _, s := range all {
		if strings.EqualFold(s.ID, id) {
			return h.schemaDoc(r, s), nil
		}
	}
	return nil, notFound("Schema", id)
}
