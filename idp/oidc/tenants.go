package oidc

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Microsoft Entra ID's multi-tenant sign-in (docs/entra-oidc.md,
// "Multi-tenant apps"). The endpoints …/organizations/v2.0 and
// …/common/v2.0 publish a discovery document whose issuer is the template
// …/{tenantid}/v2.0: each ID token fills it with its own tenant (tid), so
// that there is no one issuer to hold tokens to. Such an issuer is accepted
// only with an allow-list of tenants (Config.Tenants), and then every token
// is held to the template filled with its own tid, a tid the list admits; a
// user's key is namespaced by the tenant, so that no two tenants can ever
// sign in as one user (docs/security.md).

// AnyTenant admits every tenant, as the only value of Config.Tenants.
const AnyTenant = "any"

// tenantPlaceholder is where Entra's issuer template names the tenant.
const tenantPlaceholder = "{tenantid}"

// multiTenantPaths are the paths of Entra's multi-tenant issuers. The
// consumers endpoint (personal Microsoft accounts) is not one: its document
// names one fixed tenant's issuer.
var multiTenantPaths = []string{"/organizations/v2.0", "/common/v2.0"}

// MultiTenantIssuer reports whether issuer is one of Entra's multi-tenant
// endpoints (…/organizations/v2.0 or …/common/v2.0, on any host: the
// national clouds have their own), whose tokens each name their tenant's
// issuer and which Config.Tenants is required for.
func MultiTenantIssuer(issuer string) bool {
	u, err := url.Parse(issuer)
	return err == nil && u.Host != "" && slices.Contains(multiTenantPaths, u.Path)
}

// tenantTemplate is the issuer template a multi-tenant issuer's discovery
// document must name: the same origin, /{tenantid}/v2.0.
func tenantTemplate(issuer string) string {
	u, _ := url.Parse(issuer) // MultiTenantIssuer parsed it
	return u.Scheme + "://" + u.Host + "/" + tenantPlaceholder + "/v2.0"
}

// isGUID reports a tenant ID as Entra writes it: 8-4-4-4-12 hexadecimal
// digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// checkTenants holds Tenants to its rule: tenant IDs, or "any" alone; and
// only with a multi-tenant issuer (when the issuer is known, not deferred),
// without tenant_id, which pins one tenant.
func (c Config) checkTenants(issuerKnown bool) error {
	if len(c.Tenants) == 0 {
		return nil
	}
	for _, t := range c.Tenants {
		if t == AnyTenant && len(c.Tenants) > 1 {
			return errors.New(`tenants: "any" admits every tenant and stands alone`)
		}
		if t != AnyTenant && !isGUID(t) {
			return fmt.Errorf("tenants: %q is not a tenant ID (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47), nor %q", t, AnyTenant)
		}
	}
	if c.TenantID != "" {
		return errors.New("tenants and tenant_id exclude each other: tenant_id pins the one tenant of a tenant-specific issuer, tenants lists those a multi-tenant one admits")
	}
	if issuerKnown && !MultiTenantIssuer(c.Issuer) {
		return fmt.Errorf("tenants is only for Microsoft Entra ID's multi-tenant issuers (https://login.microsoftonline.com/organizations/v2.0 or …/common/v2.0), not issuer %q", c.Issuer)
	}
	return nil
}

// checkTenantID holds TenantID to the tid it is compared with, which is
// always the tenant's GUID: a domain name (contoso.onmicrosoft.com, which
// Entra takes in its URLs) or another GUID than the one a tenant-specific
// issuer names would refuse every sign-in tenant_mismatch. A deferred
// value is checked by New, resolved.
func (c Config) checkTenantID(deferred func(string) bool) error {
	if c.TenantID == "" || deferred(c.TenantID) {
		return nil
	}
	if !isGUID(c.TenantID) {
		return fmt.Errorf("tenant_id: %q is not a tenant ID (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47: the Directory (tenant) ID, not a domain name)", c.TenantID)
	}
	if tid, ok := issuerTenant(c.Issuer); ok && !deferred(c.Issuer) && !strings.EqualFold(tid, c.TenantID) {
		return fmt.Errorf("tenant_id %s is not the tenant of issuer %q, whose tokens all name tenant %s", c.TenantID, c.Issuer, tid)
	}
	return nil
}

// issuerTenant returns the tenant a tenant-specific Entra issuer names,
// on any host (the national clouds have their own): …/<tenant GUID>/v2.0,
// or the v1 endpoint's https://sts.windows.net/<tenant GUID>/, whose
// tokens carry the same tid.
func issuerTenant(issuer string) (string, bool) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "", false
	}
	path := strings.TrimPrefix(u.Path, "/")
	tid, ok := strings.CutSuffix(path, "/v2.0")
	if !ok {
		tid, ok = strings.CutSuffix(path, "/")
	}
	return tid, ok && isGUID(tid)
}

// checkMultiTenant is Check's rule for what the block as a whole must
// have: a multi-tenant issuer needs tenants.
func (c Config) checkMultiTenant() error {
	if MultiTenantIssuer(c.Issuer) && len(c.Tenants) == 0 {
		return fmt.Errorf("issuer %q is Microsoft Entra ID's multi-tenant endpoint: it needs tenants, the tenant IDs whose users may sign in (or %q, written out, for every tenant)", c.Issuer, AnyTenant)
	}
	return nil
}

// tenantAllowed reports whether the allow-list admits tid (a GUID).
func (p *Provider) tenantAllowed(tid string) bool {
	return isGUID(tid) && (p.cfg.Tenants[0] == AnyTenant || slices.ContainsFunc(p.cfg.Tenants, func(t string) bool { return strings.EqualFold(t, tid) }))
}

// tenantOfIssuer returns the tenant a multi-tenant issuer iss names: the
// template filled with a GUID.
func (p *Provider) tenantOfIssuer(iss string) (string, bool) {
	pre, suf, _ := strings.Cut(p.template, tenantPlaceholder)
	if len(iss) < len(pre)+len(suf) || !strings.HasPrefix(iss, pre) || !strings.HasSuffix(iss, suf) {
		return "", false
	}
	tid := iss[len(pre) : len(iss)-len(suf)]
	return tid, isGUID(tid)
}

// tokenTenant checks a multi-tenant token's iss and tid: iss must be the
// template filled with the token's own tid (else errIssuer), and the tid
// one the allow-list admits (else errTenant). It returns the tid.
func (p *Provider) tokenTenant(claims map[string]any) (tid string, errIssuer, errTenant error) {
	iss, _ := claims["iss"].(string)
	tid, _ = claims["tid"].(string)
	if !isGUID(tid) || iss != strings.ReplaceAll(p.template, tenantPlaceholder, tid) {
		return "", fmt.Errorf("iss %.200q is not the issuer of the token's tenant (tid %.100q, issuer template %q)", iss, tid, p.template), nil
	}
	if !p.tenantAllowed(tid) {
		// The allow-list is not named: the error reaches the log and the
		// audit trail, the list is the operator's configuration.
		return "", nil, fmt.Errorf("tenant %s is not one the tenants setting admits", tid)
	}
	return tid, nil, nil
}

// tenantKey namespaces an identifier by its tenant ("<tid>/<value>"), so
// that the same oid (or sub) in two tenants is two users.
func tenantKey(tid, v string) string { return strings.ToLower(tid) + "/" + v }

// namespaceKeys makes the values of the claims a user may be keyed by
// (Config.TenantKeyClaims) tenant-qualified, in attrs, the assertion's
// attributes.
func (p *Provider) namespaceKeys(attrs map[string][]string, tid string) {
	for i, name := range p.cfg.TenantKeyClaims {
		if slices.Contains(p.cfg.TenantKeyClaims[:i], name) {
			continue // namespaced once
		}
		vals := attrs[name]
		for j, v := range vals {
			if strings.TrimSpace(v) != "" {
				vals[j] = tenantKey(tid, strings.TrimSpace(v))
			}
		}
	}
}
