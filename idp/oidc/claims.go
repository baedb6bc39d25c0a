package oidc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddy-sso/caddy-sso/idp"
)

// profileClaims are the claims whose absence from the ID token makes the
// userinfo endpoint worth a request: some IdPs (Okta's org server, PingOne)
// put only sub in the ID token.
var profileClaims = []string{"given_name", "family_name", "email"}

// verifyIDToken verifies raw and returns its claims and subject: the
// signature (algorithm allow-list, JWKS or client-secret key), then every
// claim check.
func (p *Provider) verifyIDToken(ctx context.Context, raw, nonce, accessToken, code string) (map[string]any, string, error) {
	jws, err := p.keys.parse(raw)
	if err != nil {
		return nil, "", idp.Fail(CodeIDTokenSignature, err)
	}
	payload, err := p.keys.verify(ctx, jws)
	if errors.Is(err, errKeysUnavailable) {
		// Not the token's fault: the keys' fetch failed, which is an
		// outage or, for a certificate this host does not trust,
		// idp_misconfigured with the fix (fetchFailed).
		return nil, "", fetchFailed(err, CodeIdPUnavailable)
	}
	if errors.Is(err, errRefreshLimited) {
		// A new key the IdP started signing with just after the JWKS
		// was fetched: the sign-in may be tried again shortly.
		return nil, "", idp.Fail(CodeSigningKeyPending, err)
	}
	if err != nil {
		return nil, "", idp.Fail(CodeIDTokenSignature, err)
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, "", idp.Fail(CodeIDTokenSignature, fmt.Errorf("ID token claims: %w", err))
	}
	sub, err := p.checkClaims(claims, nonce)
	if err != nil {
		return nil, "", err
	}
	// at_hash is optional in the code flow; when present it must match, so
	// an access token from another login cannot be paired with this token.
	if atHash, present := claims["at_hash"]; present && accessToken != "" {
		if err := checkHalfHash(jws.Signatures[0].Header.Algorithm, "at_hash", atHash, accessToken); err != nil {
			return nil, "", idp.Fail(CodeIDTokenAtHash, err)
		}
	}
	// c_hash binds the code the same way (OpenID Connect Core 3.3.2.11):
	// optional in the code flow, checked when present, as mod_auth_openidc
	// does.
	if cHash, present := claims["c_hash"]; present {
		if err := checkHalfHash(jws.Signatures[0].Header.Algorithm, "c_hash", cHash, code); err != nil {
			return nil, "", idp.Fail(CodeIDTokenAtHash, err)
		}
	}
	return claims, sub, nil
}

// checkClaims makes the claim checks of OpenID Connect Core 3.1.3.7, each
// with its own code, and returns the subject.
func (p *Provider) checkClaims(claims map[string]any, nonce string) (string, error) {
	now, skew, clientID := p.cfg.Now(), p.cfg.ClockSkew, p.cfg.ClientID
	if p.template != "" {
		if _, errIss, errTenant := p.tokenTenant(claims); errIss != nil {
			return "", idp.Fail(CodeIDTokenIssuer, errIss)
		} else if errTenant != nil {
			return "", idp.Fail(CodeTenantNotAllowed, errTenant)
		}
	} else if iss, _ := claims["iss"].(string); !p.issuerMatches(iss) {
		return "", idp.Fail(CodeIDTokenIssuer, fmt.Errorf("iss %q, want %q", iss, p.cfg.Issuer))
	}
	aud, ok := audience(claims["aud"])
	if !ok || !slices.Contains(aud, clientID) {
		return "", idp.Fail(CodeIDTokenAudience, fmt.Errorf("aud %q does not contain the client ID", aud))
	}
	// With several audiences, azp names the party the token was issued to:
	// it must be us, not another client that shares the token.
	if azp, present := claims["azp"]; present || len(aud) > 1 {
		if s, _ := azp.(string); s != clientID {
			return "", idp.Fail(CodeIDTokenAZP, fmt.Errorf("azp %v is not the client ID (aud %q)", azp, aud))
		}
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return "", idp.Fail(CodeIDTokenExpired, errors.New("exp missing or not a number"))
	}
	if !now.Before(exp.Add(skew)) {
		return "", idp.Fail(CodeIDTokenExpired, fmt.Errorf("expired at %v (now %v, skew %v)", exp, now, skew))
	}
	iat, ok := numericDate(claims["iat"])
	if !ok {
		return "", idp.Fail(CodeIDTokenIssuedAt, errors.New("iat missing or not a number"))
	}
	if iat.After(now.Add(skew)) {
		return "", idp.Fail(CodeIDTokenIssuedAt, fmt.Errorf("issued in the future at %v (now %v, skew %v)", iat, now, skew))
	}
	if now.Sub(iat) > maxIDTokenAge+skew {
		return "", idp.Fail(CodeIDTokenIssuedAt, fmt.Errorf("issued at %v, more than %v before now (%v, skew %v)", iat, maxIDTokenAge, now, skew))
	}
	if v, present := claims["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok {
			return "", idp.Fail(CodeIDTokenNotBefore, errors.New("nbf is not a number"))
		}
		if nbf.After(now.Add(skew)) {
			return "", idp.Fail(CodeIDTokenNotBefore, fmt.Errorf("not valid before %v (now %v)", nbf, now))
		}
	}
	if got, _ := claims["nonce"].(string); nonce == "" || subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return "", idp.Fail(CodeIDTokenNonce, errors.New("nonce does not match the one sent at login"))
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return "", idp.Fail(CodeIDTokenSubject, errors.New("sub missing"))
	}
	if p.cfg.TenantID != "" {
		if tid, _ := claims["tid"].(string); !strings.EqualFold(tid, p.cfg.TenantID) {
			return "", idp.Fail(CodeTenantMismatch, fmt.Errorf("tid %q, want %q", tid, p.cfg.TenantID))
		}
	}
	return sub, nil
}

// googleIssuer is Google's issuer identifier. Its ID tokens may carry iss
// without the scheme, "accounts.google.com", which Google's documentation
// tells clients to accept as well (go-oidc's verifier does the same).
const googleIssuer = "https://accounts.google.com"

// issuerMatches reports whether an ID token's iss names the configured
// issuer: exactly, or, when that is Google's, in Google's scheme-less
// form. No other issuer gets any leeway.
func (p *Provider) issuerMatches(iss string) bool {
	return iss == p.cfg.Issuer || p.cfg.Issuer == googleIssuer && iss == strings.TrimPrefix(googleIssuer, "https://")
}

// audience reads "aud", a string or an array of strings.
func audience(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		aud := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			aud[i] = s
		}
		return aud, true
	}
	return nil, false
}

// checkHalfHash compares claim (at_hash or c_hash, named by name) with the
// left half of value's hash under the ID token's algorithm (OpenID Connect
// Core 3.1.3.6, 3.3.2.11; EdDSA uses SHA-512, as go-oidc does). A claim
// that is not a string matches nothing.
func checkHalfHash(alg, name string, claim any, value string) error {
	var sum []byte
	switch {
	case alg == "EdDSA" || strings.HasSuffix(alg, "512"):
		s := sha512.Sum512([]byte(value))
		sum = s[:32]
	case strings.HasSuffix(alg, "384"):
		s := sha512.Sum384([]byte(value))
		sum = s[:24]
	case strings.HasSuffix(alg, "256"):
		s := sha256.Sum256([]byte(value))
		sum = s[:16]
	default:
		return fmt.Errorf("no %s hash for alg %q", name, alg)
	}
	if s, _ := claim.(string); subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum)), []byte(s)) != 1 {
		return fmt.Errorf("%s does not match", name)
	}
	return nil
}

func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// decodeClaims decodes a JSON object keeping numbers as json.Number, so that
// large integers (Okta's numeric IDs, timestamps) keep every digit when
// flattened to strings.
func decodeClaims(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("claims are not a JSON object")
	}
	// RFC 7519 7.2: the payload is one JSON object. Data after it (a
	// second object with another sub) is not claims that were signed as
	// such, whoever signed the bytes.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("claims are followed by more data than one JSON object")
	}
	return m, nil
}

// missingProfileClaims are the profileClaims that claims lacks (absent,
// null or ""; not filled): those userinfo is asked for, and those a
// refusal by userinfo leaves empty.
func missingProfileClaims(claims map[string]any) []string {
	var missing []string
	for _, c := range profileClaims {
		if !filled(claims[c]) {
			missing = append(missing, c)
		}
	}
	return missing
}

// userinfo fetches the userinfo claims (JSON, or a JWT signed with the
// IdP's keys). A signed response's iss must be wantIss: the issuer, or a
// multi-tenant issuer's ID token's (its tenant's).
func (p *Provider) userinfo(ctx context.Context, endpoint, accessToken, wantIss string) (map[string]any, error) {
	body, ctype, err := get(ctx, p.client, endpoint, accessToken)
	if err != nil {
		return nil, fmt.Errorf("userinfo: %w", err)
	}
	if mt, _, _ := mime.ParseMediaType(ctype); mt == "application/jwt" {
		if body, err = p.keys.VerifySignature(ctx, string(bytes.TrimSpace(body))); err != nil {
			return nil, fmt.Errorf("userinfo JWT: %w", err)
		}
	}
	claims, err := decodeClaims(body)
	if err != nil {
		return nil, fmt.Errorf("userinfo: decoding: %w", err)
	}
	// A signed response must come from our issuer and be meant for us.
	if iss, ok := claims["iss"]; ok && iss != wantIss {
		return nil, fmt.Errorf("userinfo iss %v, want %q", iss, wantIss)
	}
	if aud, ok := claims["aud"]; ok && !slices.Contains(flattenValue(aud), p.cfg.ClientID) {
		return nil, errors.New("userinfo aud does not contain the client ID")
	}
	return claims, nil
}

// mergeClaims fills claims the ID token lacks (or has empty) from userinfo.
// It never overrides one: the ID token's iss, aud, tid, oid are what was
// verified. Userinfo's email_verified speaks of userinfo's email
// (docs/security.md: email_verified vouches only for the email claim), so
// it is taken only when that is the email kept: the ID token has none, or
// the same address (sameEmail); otherwise it is left out, as absent.
func mergeClaims(claims, userinfo map[string]any) {
	vouches := !filled(claims["email"]) || sameEmail(emailClaim(claims), emailClaim(userinfo))
	for k, v := range userinfo {
		if k == "email_verified" && !vouches {
			continue
		}
		if !filled(claims[k]) {
			claims[k] = v
		}
	}
}

// filled reports a claim that mergeClaims keeps: present, not null, not "".
func filled(v any) bool { return v != nil && v != "" }

// sameEmail reports whether a and b are one address for email_verified's
// sake: equal once trimmed, or ASCII and equal but for case. Deliberately
// narrower than the JIT rules' spellings of a mailbox (idp/oidc does not
// import provision, docs/architecture.md), and than strings.EqualFold,
// which takes "ſam" for "sam": an address that differs only by Unicode
// case or normalization counts as unverified, the safe side.
func sameEmail(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	return a == b || isASCII(a) && isASCII(b) && strings.EqualFold(a, b)
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// flatten turns claims into idp.Assertion attributes: strings as they are,
// numbers and booleans as their JSON text, arrays as one value per element,
// objects (and nested arrays) as their JSON text. Nulls are left out. The
// members of object claims are added under dotted paths too (claimPaths),
// so that `map groups realm_access.roles` reads Keycloak's roles.
func flatten(claims map[string]any) map[string][]string {
	out := make(map[string][]string, len(claims))
	var objects []string
	for k, v := range claims {
		if v == nil {
			continue
		}
		out[k] = flattenValue(v)
		if _, ok := v.(map[string]any); ok {
			objects = append(objects, k)
		}
	}
	if len(objects) > 0 {
		claimPaths(out, claims, objects)
	}
	return out
}

// Bounds on the dotted paths of claimPaths. The ID token and userinfo are
// the IdP's word on who someone is and on nothing else (docs/security.md,
// "Threat model"): an object of many members or a deep one, by mistake or
// copied from data a user may edit (Auth0's user_metadata, a Keycloak
// attribute), must cost a sign-in little. Each path repeats its prefix, so
// without a bound a 1 MiB token could make gigabytes of names.
const (
	// maxClaimPathDepth is how many members below its claim a path may
	// name: Keycloak's resource_access.<client>.roles is 2.
	maxClaimPathDepth = 8
	// maxClaimPathBytes is the longest path, in bytes: a name no `map`
	// line would spell is never made.
	maxClaimPathBytes = 256
	// maxClaimMembers is how many members one claim's paths may visit. A
	// claim with more gets none of its paths rather than some, so that
	// which paths arrive never depends on how its members' names sort; and
	// a claim a user can fill (user_metadata) cannot use up maxClaimPaths
	// and push out the paths of the claim the groups come from.
	maxClaimMembers = 512
	// maxClaimPaths is how many members all claims' paths may visit
	// together; claims are taken in the order of claimPathOrder, each
	// whole or not at all.
	maxClaimPaths = 4096
)

// claimPaths adds to out, under "<claim>.<member>[.<member>…]", every member
// of the object claims (named by objects) that is not an object itself,
// flattened as a top-level claim is (an array is one value per element, an
// empty one present and empty; null left out), within the bounds above.
//
// A claim's own name always wins: a top-level claim whose name has dots
// (Auth0's namespaced "https://example.com/roles") is never shadowed by a
// path, and a path never has a name without a dot ("email", "groups"), so
// the presets' claims are never read from a path. Where two paths spell the
// same name ({"a.b": {"c": 1}} and {"a": {"b.c": 2}}), the longer member
// name at the first level they differ wins, as a reader who tries the
// longest name present first would find it: a claim that contains the whole
// of another's name is the more exact one. A member named with dots
// ("resource_access": {"app.example.com": …}) is reached by its name as it
// is: resource_access.app.example.com.roles.
func claimPaths(out map[string][]string, claims map[string]any, objects []string) {
	slices.SortFunc(objects, claimPathOrder)
	budget := maxClaimPaths
	for _, name := range objects {
		obj := claims[name].(map[string]any)
		n, ok := countClaimMembers(obj, len(name), 1, min(maxClaimMembers, budget))
		if !ok {
			continue
		}
		budget -= n
		addClaimPaths(out, claims, name, obj, 1)
	}
}

// countClaimMembers counts the members addClaimPaths visits in obj, whose
// path so far is prefixLen bytes long at depth members below its claim; ok
// is false, and counting stops, past limit.
func countClaimMembers(obj map[string]any, prefixLen, depth, limit int) (n int, ok bool) {
	for k, v := range obj {
		l := prefixLen + 1 + len(k)
		if l > maxClaimPathBytes {
			continue
		}
		if n++; n > limit {
			return n, false
		}
		if sub, isObj := v.(map[string]any); isObj && depth < maxClaimPathDepth {
			m, ok := countClaimMembers(sub, l, depth+1, limit-n)
			if n += m; !ok {
				return n, false
			}
		}
	}
	return n, true
}

// addClaimPaths adds the paths of obj's members below prefix (see
// claimPaths), visiting what countClaimMembers counted, in claimPathOrder.
func addClaimPaths(out map[string][]string, claims map[string]any, prefix string, obj map[string]any, depth int) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if len(prefix)+1+len(k) <= maxClaimPathBytes {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, claimPathOrder)
	for _, k := range keys {
		path := prefix + "." + k
		switch v := obj[k].(type) {
		case nil:
		case map[string]any:
			if depth < maxClaimPathDepth {
				addClaimPaths(out, claims, path, v, depth+1)
			}
		default:
			_, exact := claims[path] // even null: the IdP named it
			if _, taken := out[path]; !exact && !taken {
				out[path] = flattenValue(v)
			}
		}
	}
}

// claimPathOrder sorts longer names first, then by bytes: the order in
// which claimPaths settles paths that spell the same name, and spends its
// budget.
func claimPathOrder(a, b string) int {
	if len(a) != len(b) {
		return len(b) - len(a)
	}
	return strings.Compare(a, b)
}

func flattenValue(v any) []string {
	if arr, ok := v.([]any); ok {
		vals := make([]string, 0, len(arr))
		for _, e := range arr {
			if e != nil {
				vals = append(vals, scalar(e))
			}
		}
		return vals
	}
	return []string{scalar(v)}
}

func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	default:
		b, err := json.Marshal(v) // maps marshal with sorted keys: stable text
		if err != nil {
			return ""
		}
		return string(b)
	}
}

// isFalse reports an email_verified that says false, as a boolean or as
// the string some IdPs send; absent, null or anything else is not.
func isFalse(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case string:
		return strings.EqualFold(v, "false")
	}
	return false
}

// isTrue reads email_verified, which some IdPs send as the string "true".
func isTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}
