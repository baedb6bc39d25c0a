package saml

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/crewjam/saml"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
)

// idpMetadata is one parsed copy of the IdP metadata. It is never modified
// once published, so requests read it without locking.
type idpMetadata struct {
	ed *saml.EntityDescriptor
	// sloResponse is ed with every SingleLogoutService Location replaced by
	// its ResponseLocation, when it has one: LogoutResponses go there
	// (saml-metadata §2.2.2), while crewjam always uses Location.
	sloResponse *saml.EntityDescriptor
	loaded      time.Time
	validUntil  time.Time // zero when the metadata sets none
}

// ParseMetadata reads IdP metadata: a single EntityDescriptor, or an
// EntitiesDescriptor holding exactly one IdP (or the one named entityID).
// DTDs are refused before anything parses the document, as are metadata
// without an entityID or an IDPSSODescriptor. The Provider (and `caddy sso
// check`) build on it.
//
// The returned ValidUntil is the effective one: the earliest validUntil of
// every element that vouches for the IdP's keys and endpoints, from each
// enclosing EntitiesDescriptor down to the IDPSSODescriptors (see
// effectiveValidUntil), so that whoever reads it alone gets it right.
func ParseMetadata(data []byte, entityID string) (*saml.EntityDescriptor, error) {
	if err := refuseDeclarations(data); err != nil {
		return nil, err
	}
	root, err := rootName(data)
	if err != nil {
		return nil, err
	}
	var ed *saml.EntityDescriptor
	switch root.Local {
	case "EntityDescriptor":
		ed = &saml.EntityDescriptor{}
		if err := xml.Unmarshal(data, ed); err != nil {
			return nil, fmt.Errorf("parsing metadata: %w", err)
		}
	case "EntitiesDescriptor":
		var all saml.EntitiesDescriptor
		if err := xml.Unmarshal(data, &all); err != nil {
			return nil, fmt.Errorf("parsing metadata: %w", err)
		}
		var found []*saml.EntityDescriptor
		collectIdPs(&all, entityID, time.Time{}, &found)
		if len(found) != 1 {
			return nil, fmt.Errorf("metadata describes %d matching identity providers; set the IdP entity ID to choose one", len(found))
		}
		ed = found[0]
	default:
		return nil, fmt.Errorf("metadata root element is %q, want EntityDescriptor", root.Local)
	}
	if entityID != "" && ed.EntityID != entityID {
		return nil, fmt.Errorf("metadata is for entity %q, want %q", ed.EntityID, entityID)
	}
	if ed.EntityID == "" {
		return nil, errors.New("metadata has no entityID")
	}
	if len(ed.IDPSSODescriptors) == 0 {
		return nil, errors.New("metadata has no IDPSSODescriptor")
	}
	ed.ValidUntil = effectiveValidUntil(ed)
	return ed, nil
}

// effectiveValidUntil is the earliest of ed's validUntil (which
// collectIdPs has already bounded by every enclosing EntitiesDescriptor's)
// and each IDPSSODescriptor's: an element is valid only while everything
// that contains it is (saml-metadata §2.3.2, §2.4.1), and the keys sign-in
// trusts sit in the IDPSSODescriptors. Zero means none is set.
func effectiveValidUntil(ed *saml.EntityDescriptor) time.Time {
	vu := ed.ValidUntil
	for _, d := range ed.IDPSSODescriptors {
		vu = earliest(vu, d.ValidUntil)
	}
	return vu
}

// earliest is the earlier of a and *b, where a zero a and a nil or zero b
// mean "no validUntil".
func earliest(a time.Time, b *time.Time) time.Time {
	if b == nil || b.IsZero() {
		return a
	}
	if a.IsZero() || b.Before(a) {
		return *b
	}
	return a
}

// parseIdPMetadata is ParseMetadata plus what a login needs: a signing
// certificate and a usable SingleSignOnService.
func parseIdPMetadata(data []byte, entityID string, now time.Time) (*idpMetadata, error) {
	ed, err := ParseMetadata(data, entityID)
	if err != nil {
		return nil, err
	}
	if err := usable(ed); err != nil {
		return nil, err
	}
	// ParseMetadata made ed.ValidUntil the effective validUntil.
	md := &idpMetadata{ed: ed, loaded: now, validUntil: ed.ValidUntil, sloResponse: ed}
	if needsResponseLocation(ed) {
		cp := *ed
		cp.IDPSSODescriptors = append([]saml.IDPSSODescriptor(nil), ed.IDPSSODescriptors...)
		for i := range cp.IDPSSODescriptors {
			d := &cp.IDPSSODescriptors[i]
			d.SingleLogoutServices = append([]saml.Endpoint(nil), d.SingleLogoutServices...)
			for j := range d.SingleLogoutServices {
				if rl := d.SingleLogoutServices[j].ResponseLocation; rl != "" {
					d.SingleLogoutServices[j].Location = rl
				}
			}
		}
		md.sloResponse = &cp
	}
	return md, nil
}

// usable checks what a login needs of parsed metadata: a signing
// certificate and a SingleSignOnService with a binding this SP speaks.
func usable(ed *saml.EntityDescriptor) error {
	if len(signingCerts(ed)) == 0 {
		return errors.New("metadata lists no signing certificate")
	}
	for _, d := range ed.IDPSSODescriptors {
		for _, s := range d.SingleSignOnServices {
			if s.Binding == saml.HTTPRedirectBinding || s.Binding == saml.HTTPPostBinding {
				return nil
			}
		}
	}
	return errors.New("metadata lists no HTTP-Redirect or HTTP-POST SingleSignOnService")
}

// signingCerts returns the base64 certificates the IdP signs with.
func signingCerts(ed *saml.EntityDescriptor) []string {
	var out []string
	for _, d := range ed.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if kd.Use == "" || kd.Use == "signing" {
				for _, c := range kd.KeyInfo.X509Data.X509Certificates {
					out = append(out, c.Data)
				}
			}
		}
	}
	return out
}

func needsResponseLocation(ed *saml.EntityDescriptor) bool {
	for _, d := range ed.IDPSSODescriptors {
		for _, s := range d.SingleLogoutServices {
			if s.ResponseLocation != "" && s.ResponseLocation != s.Location {
				return true
			}
		}
	}
	return false
}

// collectIdPs appends to found a copy of every IdP entity in all and its
// nested EntitiesDescriptors (those named entityID, when set). bound is
// the earliest validUntil of the EntitiesDescriptors enclosing all (zero
// for none): an aggregate's validity bounds everything in it, at any depth
// (saml-metadata §4.3.1), so each copy's ValidUntil is the earliest of its
// own and every enclosing one's.
func collectIdPs(all *saml.EntitiesDescriptor, entityID string, bound time.Time, found *[]*saml.EntityDescriptor) {
	bound = earliest(bound, all.ValidUntil)
	for i := range all.EntityDescriptors {
		e := &all.EntityDescriptors[i]
		if len(e.IDPSSODescriptors) > 0 && (entityID == "" || e.EntityID == entityID) {
			cp := *e
			cp.ValidUntil = earliest(bound, &cp.ValidUntil)
			*found = append(*found, &cp)
		}
	}
	for i := range all.EntitiesDescriptors {
		collectIdPs(&all.EntitiesDescriptors[i], entityID, bound, found)
	}
}

func rootName(data []byte) (xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}, fmt.Errorf("parsing metadata: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name, nil
		}
	}
}

// loadMetadata reads the configured source and, if it parses and its
// validUntil has not passed, publishes it. A failure leaves the previous
// copy in place. Callers hold no lock; loads
// are serialised here.
func (p *Provider) loadMetadata(ctx context.Context) error {
	p.fetchMu.Lock()
	defer p.fetchMu.Unlock()
	return p.loadLocked(ctx)
}

func (p *Provider) loadLocked(ctx context.Context) error {
	defer p.loads.Add(1)
	now := p.cfg.Now()
	p.lastAttempt = now
	data, src, err := p.readSource(ctx)
	if err == nil {
		var md *idpMetadata
		md, err = parseIdPMetadata(data, p.cfg.IdPEntityID, now)
		if err == nil && md.expired(now) {
			// Metadata already past its validUntil vouches for no key
			// (saml-metadata §2.2.1): a copy that sign-in would refuse
			// must not replace one it still trusts, nor let the
			// unknown-key retry accept a key found only in it.
			err = &expiredMetadataError{md.validUntil}
		}
		if err == nil {
			old := p.md.Swap(md)
			p.lastErr = nil
			if old == nil || !bytes.Equal(certFingerprint(old.ed), certFingerprint(md.ed)) {
				p.log.Info("saml idp metadata loaded", zap.String("source", src),
					zap.String("entity_id", md.ed.EntityID), zap.Time("valid_until", md.validUntil))
			}
			return nil
		}
		err = &badMetadataError{err}
	}
	err = fmt.Errorf("loading IdP metadata from %s: %w", src, err)
	p.lastErr = err
	// A certificate this host does not trust is worded with its fix here
	// too: a background refresh has no sign-in whose error would say it,
	// and the operator reading this line is the one who can act.
	logged := cmp.Or(idp.UntrustedCertificate(err), err)
	if p.md.Load() != nil {
		p.log.Warn("saml idp metadata refresh failed; keeping the last good copy", zap.Error(logged))
	} else {
		p.log.Warn("saml idp metadata unavailable", zap.Error(logged))
	}
	return err
}

// certFingerprint is a cheap identity of the signing keys in ed, used to log
// only loads that changed something.
func certFingerprint(ed *saml.EntityDescriptor) []byte {
	var b bytes.Buffer
	b.WriteString(ed.EntityID)
	for _, d := range ed.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				b.WriteString(c.Data)
			}
		}
	}
	return b.Bytes()
}

func (p *Provider) readSource(ctx context.Context) ([]byte, string, error) {
	return readMetadata(ctx, p.client, MetadataSource{URL: p.cfg.MetadataURL, File: p.cfg.MetadataFile, XML: p.cfg.MetadataXML})
}

// MetadataSource says where IdP metadata comes from: inline XML, a file,
// or a URL, tried in that order.
type MetadataSource struct {
	URL  string
	File string
	XML  []byte
}

// readMetadata reads the metadata of src, at most maxMetadataSize bytes,
// and names where it came from. A larger document is a *badMetadataError:
// it is what a federation aggregate looks like, and fetching it again
// will not shrink it, so sign-in says idp_misconfigured rather than ask
// people to try again (docs/architecture.md: misconfigured vs unreachable).
func readMetadata(ctx context.Context, client *http.Client, src MetadataSource) ([]byte, string, error) {
	data, where, err := readMetadataSource(ctx, client, src)
	if tl := (*tooLargeError)(nil); errors.As(err, &tl) {
		err = &badMetadataError{fmt.Errorf("the metadata is larger than %d MiB, the most this SP reads (a federation's "+
			"aggregate of every member?): use the IdP's own metadata, or the federation's per-entity (MDQ) URL for it", tl.limit>>20)}
	}
	return data, where, err
}

func readMetadataSource(ctx context.Context, client *http.Client, src MetadataSource) ([]byte, string, error) {
	switch {
	case len(src.XML) > 0:
		return src.XML, "inline configuration", nil
	case src.File != "":
		data, err := readFile(src.File, maxMetadataSize)
		return data, src.File, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return nil, src.URL, err
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := client.Do(req)
	if err != nil {
		return nil, src.URL, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, src.URL, fmt.Errorf("HTTP status %s", resp.Status)
	}
	data, err := readCapped(resp.Body, maxMetadataSize)
	return data, src.URL, err
}

// metadata returns the current IdP metadata. If there is none yet (URL
// metadata not fetched, or every fetch failed), it fetches it now, at most
// once per minRetry across all requests.
func (p *Provider) metadata(ctx context.Context) (*idpMetadata, error) {
	if md := p.md.Load(); md != nil {
		return md, nil
	}
	loadsBefore := p.loads.Load()
	p.fetchMu.Lock()
	defer p.fetchMu.Unlock()
	if md := p.md.Load(); md != nil {
		return md, nil
	}
	// A load that ended while this request waited for it (the one Start
	// began, say) is this request's answer: trying again at once would
	// make the person wait twice as long for the same outage.
	if p.loads.Load() != loadsBefore ||
		!p.lastAttempt.IsZero() && p.cfg.Now().Sub(p.lastAttempt) < p.minRetry {
		return nil, p.metadataFailed(p.lastErr)
	}
	if err := p.loadLocked(ctx); err != nil {
		return nil, p.metadataFailed(err)
	}
	return p.md.Load(), nil
}

// badMetadataError is metadata that was read but that sign-in refuses
// (it does not parse, names another entity, lists no signing
// certificate, is over maxMetadataSize): reading it again does not help
// until an administrator acts.
type badMetadataError struct{ err error }

func (e *badMetadataError) Error() string { return e.err.Error() }
func (e *badMetadataError) Unwrap() error { return e.err }

// metadataFailed is the error of a sign-in without metadata:
// idp.CodeMisconfigured when what was read is refused, or when the
// metadata URL's TLS certificate is not trusted here (worded with the fix,
// idp.UntrustedCertificate); CodeMetadataUnavailable when nothing could be
// read.
func (p *Provider) metadataFailed(err error) error {
	if u := idp.UntrustedCertificate(err); u != nil {
		return idp.Fail(idp.CodeMisconfigured, fmt.Errorf("saml idp %q: %w", p.cfg.Name, u))
	}
	err = fmt.Errorf("saml idp %q: %w", p.cfg.Name, err)
	var bad *badMetadataError
	if errors.As(err, &bad) {
		return idp.Fail(idp.CodeMisconfigured, err)
	}
	return idp.Fail(CodeMetadataUnavailable, err)
}

// signInMetadata is the metadata a sign-in trusts: the current copy,
// unless its validUntil has passed. Metadata past its validUntil is no
// longer valid (SAML metadata §2.2.1), and the IdP's keys in it no longer
// vouched for. URL metadata is fetched again first (reloadExpired): the
// refresh waits on a timer, which stands still while a VM is suspended,
// while validUntil is judged by the wall clock, so after a resume, or a
// clock set right by hand, the copy held may be past its validUntil for up
// to metadata_refresh before the refresh comes. When the fresh copy is
// expired too (or it is file or inline metadata, which the refresh has
// read already), it takes an administrator: idp.CodeMisconfigured. Every
// message verified with the IdP's keys goes through it (or, after a
// reload for a new key, trusted), the SLO endpoint's included: a
// LogoutRequest ends sessions, so keys that may no longer sign a login may
// not end one.
func (p *Provider) signInMetadata(ctx context.Context) (*idpMetadata, error) {
	md, err := p.metadata(ctx)
	if err != nil {
		return nil, err
	}
	if md.expired(p.cfg.Now()) {
		md = p.reloadExpired(ctx, md)
	}
	return p.trusted(md)
}

// reloadExpired fetches URL metadata again when seen, the copy held, has
// expired, at most once per minRetry across all requests (as metadata does
// with no copy), and returns the copy held after it: a fresh one, or seen
// when the fetch failed or returned metadata expired too (loadLocked keeps
// it). File and inline metadata are returned as they are.
func (p *Provider) reloadExpired(ctx context.Context, seen *idpMetadata) *idpMetadata {
	if p.cfg.MetadataURL == "" {
		return seen
	}
	loadsBefore := p.loads.Load()
	p.fetchMu.Lock()
	defer p.fetchMu.Unlock()
	// A load that ended while this request waited for it is its answer.
	if cur := p.md.Load(); cur != seen || p.loads.Load() != loadsBefore ||
		!p.lastAttempt.IsZero() && p.cfg.Now().Sub(p.lastAttempt) < p.minRetry {
		return cur
	}
	_ = p.loadLocked(ctx) // logged there; a failure keeps seen
	return p.md.Load()
}

// trusted returns md if sign-in may trust it now, else signInMetadata's
// error for metadata past its validUntil.
func (p *Provider) trusted(md *idpMetadata) (*idpMetadata, error) {
	if md.expired(p.cfg.Now()) {
		return nil, idp.Fail(idp.CodeMisconfigured, fmt.Errorf("saml idp %q: %w", p.cfg.Name, &expiredMetadataError{md.validUntil}))
	}
	return md, nil
}

// expired reports whether md's validUntil has passed at now.
func (md *idpMetadata) expired(now time.Time) bool {
	return !md.validUntil.IsZero() && !now.Before(md.validUntil)
}

// expiredMetadataError is metadata past its validUntil: sign-in refuses
// it, and a load refuses to publish it (see loadLocked).
type expiredMetadataError struct{ validUntil time.Time }

func (e *expiredMetadataError) Error() string {
	return fmt.Sprintf("the IdP metadata expired at %s (validUntil): replace it with the IdP's current metadata",
		e.validUntil.UTC().Format(time.RFC3339))
}

// verifyWithRollover runs verify, which checks a message from the IdP
// against the keys of md, sign-in's metadata. If it fails in a way an IdP
// signing-key rollover explains (keyMayHaveRolled), it reloads the
// metadata (refreshForUnknownKey, so at most once per minRetry) and, if a
// new copy sign-in trusts was published, runs verify once more with it.
// It returns the metadata of the last try, and on failure an
// *idp.LoginError (classify's). The ACS and both SLO messages, on either
// binding, go through it.
func (p *Provider) verifyWithRollover(ctx context.Context, md *idpMetadata, verify func(*idpMetadata) error) (*idpMetadata, error) {
	err := verify(md)
	if err != nil && keyMayHaveRolled(err) && p.refreshForUnknownKey(ctx, md) {
		// The IdP may have rolled its signing key over: try once more
		// with the metadata just fetched, if sign-in may trust it.
		if md, err = p.trusted(p.md.Load()); err != nil {
			return nil, err
		}
		err = verify(md)
	}
	if err != nil {
		return md, p.describeTrust(md, classify(err))
	}
	return md, nil
}

// keyMayHaveRolled reports whether err, from crewjam verifying a message
// from the IdP, is a signature failure that a signing key missing from the
// cached metadata would explain: a certificate the metadata does not list
// (XML signatures carrying one), or a signature none of the listed keys
// verifies (the HTTP-Redirect binding, which carries no certificate, and
// XML signatures without one). A forged or tampered message fails the
// same way, which costs at most one reload per minRetry.
func keyMayHaveRolled(err error) bool {
	var le *idp.LoginError
	return errors.As(classify(err), &le) && (le.Code == CodeUntrustedKey || le.Code == CodeSignature)
}

// refreshForUnknownKey reloads URL or file metadata after a message was
// signed by a key the current copy does not list, which is what an IdP
// signing-key rollover looks like. It reports whether a new copy was
// published. Forced reloads happen at most once per minRetry, so forged
// responses cannot turn into a flood of fetches.
func (p *Provider) refreshForUnknownKey(ctx context.Context, seen *idpMetadata) bool {
	if len(p.cfg.MetadataXML) > 0 {
		return false
	}
	p.fetchMu.Lock()
	defer p.fetchMu.Unlock()
	if cur := p.md.Load(); cur != seen {
		return true // someone else already reloaded
	}
	now := p.cfg.Now()
	if !p.lastForced.IsZero() && now.Sub(p.lastForced) < p.minRetry {
		return false
	}
	p.lastForced = now
	return p.loadLocked(ctx) == nil && p.md.Load() != seen
}

// startRefresh (run by Start) begins keeping the IdP metadata fresh in the
// background: URL metadata is fetched at once (so the first login does not
// wait), and URL and file metadata are reloaded every MetadataRefresh, when
// the metadata's validUntil passes, and sooner after failures (with
// backoff). Inline metadata needs no refresh. It returns immediately; Close
// stops it. Calling it more than once has no further effect.
func (p *Provider) startRefresh() {
	p.startOnce.Do(func() {
		if len(p.cfg.MetadataXML) > 0 {
			close(p.done)
			return
		}
		go p.refreshLoop()
	})
}

// Close stops the refresher started by Start and waits for it to finish.
// After Close, Start starts no refresher.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() { close(p.stop) })
	p.startOnce.Do(func() { close(p.done) }) // never started: nothing to wait for
	<-p.done
	return nil
}

func (p *Provider) refreshLoop() {
	defer close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	failures := 0
	if p.md.Load() == nil {
		if err := p.loadMetadata(ctx); err != nil {
			failures++
		}
	}
	for {
		delay := p.nextRefresh(failures)
		t := time.NewTimer(delay)
		select {
		case <-p.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if err := p.loadMetadata(ctx); err != nil {
			failures++
		} else {
			failures = 0
		}
	}
}

// nextRefresh is how long to wait before the next reload: MetadataRefresh,
// or until validUntil if that comes first, or after failures minRetry
// doubled per consecutive failure (capped at MetadataRefresh). It is never
// less than minRetry, so expired metadata whose source still serves the same
// expired copy is not fetched in a tight loop.
func (p *Provider) nextRefresh(failures int) time.Duration {
	delay := p.cfg.MetadataRefresh
	if failures > 0 {
		backoff := p.minRetry
		for i := 1; i < failures && backoff < delay; i++ {
			backoff *= 2
		}
		delay = min(backoff, delay)
	}
	if md := p.md.Load(); md != nil && !md.validUntil.IsZero() {
		delay = min(delay, md.validUntil.Sub(p.cfg.Now()))
	}
	return max(delay, p.minRetry)
}

// Metadata writes this SP's metadata for the site at base: entity ID, the
// ACS (HTTP-POST), the SLO endpoint (HTTP-Redirect and HTTP-POST), the
// signing and encryption certificates of every configured key pair (both
// during a rotation, current first), and the NameID formats accepted. It is
// what an IdP administrator uploads or points the IdP at.
func (p *Provider) Metadata(w http.ResponseWriter, r *http.Request, base string) error {
	e, err := p.siteEndpoints(base)
	if err != nil {
		return err
	}
	// The SP metadata does not depend on the IdP's; crewjam only needs a
	// non-nil copy.
	sp := p.serviceProvider(e, &saml.EntityDescriptor{}, p.cfg.Now())
	ed := sp.Metadata()
	sso := &ed.SPSSODescriptors[0]
	for _, kp := range p.keys[1:] {
		cert := base64.StdEncoding.EncodeToString(kp.Certificate.Raw)
		for _, use := range []string{"signing", "encryption"} {
			kd := saml.KeyDescriptor{Use: use, KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
				X509Certificates: []saml.X509Certificate{{Data: cert}},
			}}}
			if use == "encryption" {
				// The same algorithms crewjam advertises for the current key.
				for _, cur := range sso.KeyDescriptors {
					if cur.Use == "encryption" {
						kd.EncryptionMethods = cur.EncryptionMethods
					}
				}
			}
			sso.KeyDescriptors = append(sso.KeyDescriptors, kd)
		}
	}
	if p.cfg.NameIDFormat != "" {
		sso.NameIDFormats = []saml.NameIDFormat{saml.NameIDFormat(p.cfg.NameIDFormat)}
	} else {
		sso.NameIDFormats = []saml.NameIDFormat{saml.PersistentNameIDFormat, saml.EmailAddressNameIDFormat,
			saml.UnspecifiedNameIDFormat, saml.TransientNameIDFormat}
	}
	buf, err := xml.MarshalIndent(ed, "", "  ")
	if err != nil {
		return fmt.Errorf("saml idp %q: encoding SP metadata: %w", p.cfg.Name, err)
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(append([]byte(xml.Header), buf...))
	return err
}
