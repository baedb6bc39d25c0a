package saml

import "time"

// MetadataHealth is what an operator alerts on before the IdP's metadata
// stops sign-in: when the copy in use was loaded (every refresh that
// succeeds loads it again, so an old time means refreshes fail), when it
// expires (its validUntil: sign-in refuses expired metadata), and when the
// last of its signing certificates expires. Sign-in trusts the keys the
// metadata lists whatever their certificates' dates (the Metadata
// Interoperability Profile), so an expired certificate stops nothing; once
// the last one has expired, though, the IdP must be signing with a key
// this metadata lacks. During a rollover the IdP publishes its old and new
// certificates together: the earliest would alarm for the whole overlap.
// A zero time is unknown: nothing loaded, no validUntil, no certificate
// that parses.
type MetadataHealth struct {
	Loaded, ValidUntil, CertificateExpiry time.Time
}

// MetadataHealth reports on the metadata in use.
func (p *Provider) MetadataHealth() MetadataHealth {
	md := p.md.Load()
	if md == nil {
		return MetadataHealth{}
	}
	h := MetadataHealth{Loaded: md.loaded, ValidUntil: md.validUntil}
	for _, b64 := range signingCerts(md.ed) {
		if c := parseCertificate(b64); c.Err == nil && c.NotAfter.After(h.CertificateExpiry) {
			h.CertificateExpiry = c.NotAfter
		}
	}
	return h
}
