// Package provision applies the Just-In-Time provisioning rules (the
// README's "How JIT provisioning decides") to one verified sign-in: it finds the user by the IdP link,
// creates or updates them, or denies the login with a reason, and writes
// the audit trail for whichever happened, all in one store transaction.
//
// JIT and SCIM (package provision/scim) share one user record:
//   - A login looks the user up by (IdP, subject) link, then by SCIM
//     externalId under the same IdP, and adopts a user found that way by
//     adding the link. The set-up guide maps externalId to the IdP's
//     uniqueUserId, so a user SCIM created before their first login signs
//     in as that user rather than a duplicate.
//   - JIT gives the users it creates ExternalID = subject (and UserName =
//     email when free, moved along when a login changes the email), so
//     Entra's and Okta's matching find and adopt them instead of creating
//     duplicates.
//   - Once SCIM owns a user (Source scim), the profile is SCIM's: a login
//     no longer changes names or email. Its groups still follow the
//     sign-in (update force): the token's groups are a source of their
//     own, as SCIM's are, so an adopted JIT user loses a group the IdP
//     removed, and a user SCIM created gets the groups their token carries.
//   - A deactivated user stays denied; JIT never reactivates.
//   - While SCIM is enabled for an IdP (Rules.SCIMManaged), a subject SCIM
//     deleted (a tombstone) is denied rather than re-created; a person SCIM
//     deleted is denied at every other IdP they signed in through too,
//     while the tombstone at the SCIM-managed IdP stands (login.tombstone).
//   - SCIM group memberships survive a login's groups update: the user's
//     Groups are the IdP's groups, the defaults (recorded apart, so that a
//     login replaces them even when the IdP sent no groups) and the SCIM
//     groups.
//
// Nothing here knows about Caddy or HTTP; the caller turns a *Denial into
// the 403 page.
package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/maildomain"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/store"
)

// FieldGroups is how a user.updated event's fields detail names a change
// of the user's groups: by a sign-in (JIT) or a SCIM group write, so that
// one filter finds both.
const FieldGroups = "groups"

// UpdateMode says what a later login does to a user's stored profile.
type UpdateMode int

const (
	// UpdateForce (the default) copies first name, last name, email and
	// groups from every login, so the IdP stays the source of truth.
	UpdateForce UpdateMode = iota
	// UpdateImport takes the profile on creation only; afterwards the
	// stored record (edited by SCIM or an admin) wins.
	UpdateImport
)

// String returns the Caddyfile spelling of the mode.
func (m UpdateMode) String() string {
	switch m {
	case UpdateForce:
		return "force"
	case UpdateImport:
		return "import"
	}
	return fmt.Sprintf("UpdateMode(%d)", int(m))
}

// ParseUpdateMode reads the Caddyfile spelling ("force" or "import").
func ParseUpdateMode(s string) (UpdateMode, error) {
	switch s {
	case "force":
		return UpdateForce, nil
	case "import":
		return UpdateImport, nil
	}
	return 0, fmt.Errorf("provision: unknown update mode %q (want force or import)", s)
}

// Rules are one IdP's provisioning settings.
type Rules struct {
	// JIT lets unknown subjects be created on first login. Off, only users
	// that already exist (SCIM, admin) can sign in.
	JIT bool
	// Update decides whether later logins refresh the stored profile.
	Update UpdateMode
	// Optional names attributes (mapping.FirstName, LastName, Email) that
	// may be missing when a user is created. By default all are required,
	// because a user without them is useless to the upstream app.
	Optional []string
	// AllowedDomains, when set, admits only emails in exactly these domains
	// (case-insensitive, no subdomains: each is listed on its own; an
	// internationalized domain matches in Unicode or xn-- spelling).
	// Checked on every login, not only on creation, so narrowing the list
	// takes effect at once.
	AllowedDomains []string
	// DefaultGroups are granted on creation and at every force update,
	// whether or not the IdP sends groups: the user records the defaults
	// they were given (store.User.DefaultGroups), so that a sign-in
	// replaces them by the configured ones and a default removed from the
	// configuration goes (groupsFrom). Users SCIM owns get none.
	DefaultGroups []string
	// CreatePending creates users awaiting admin approval; they cannot
	// sign in until an admin clears Pending.
	CreatePending bool
	// LinkByEmail links an unknown subject to the existing user that owns
	// its email, but only when the IdP vouched for the email: otherwise
	// anyone able to set an email at some IdP could take over an account.
	// And only into a user whose address was vouched for too
	// (store.User.EmailVerified): otherwise whoever got the address into
	// the store first, through a source nobody verifies, would be given
	// the account of the person it belongs to at their first sign-in.
	LinkByEmail bool
	// SCIMManaged says SCIM provisioning is enabled for this IdP. Then a
	// subject SCIM deleted is denied instead of being re-created by JIT:
	// a leaver removed in the directory must not come back by signing in
	// (their IdP session may outlive the deletion). Off, tombstones are
	// ignored, so turning SCIM off hands the users back to JIT, except
	// those a SCIM deletion at another IdP left for a person who also
	// signed in here (login.tombstone).
	SCIMManaged bool
}

// Validate reports configuration mistakes, for use when the config loads.
func (r Rules) Validate() error {
	for _, o := range r.Optional {
		switch o {
		case mapping.FirstName, mapping.LastName, mapping.Email:
		default:
			return fmt.Errorf("provision: attribute %q cannot be optional (only %s, %s, %s can)",
				o, mapping.FirstName, mapping.LastName, mapping.Email)
		}
	}
	for _, entry := range r.AllowedDomains {
		if err := maildomain.Check(entry); err != nil {
			return fmt.Errorf("provision: allowed domain (allowed_domains) %w", err)
		}
	}
	// store.NormalGroupNames drops a blank name: written, it would be a
	// group silently never granted.
	if slices.ContainsFunc(r.DefaultGroups, idp.Blank) {
		return errors.New("provision: default_groups must not hold an empty or blank group name")
	}
	// Granted as written: a placeholder is never resolved.
	if err := idp.CheckLiteral("default_groups", r.DefaultGroups...); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if r.Update != UpdateForce && r.Update != UpdateImport {
		return fmt.Errorf("provision: invalid update mode %v", r.Update)
	}
	return nil
}

// CheckJIT is the rule of the rules as a whole, checked once an IdP's
// settings are all read (Validate holds each setting as it is read):
// optional, create_as pending and link_by_email act only on a user JIT
// creates, and without JIT an unknown subject is refused jit_disabled
// before any of them is read (login), so written alone they would do
// nothing, silently.
func (r Rules) CheckJIT() error {
	if r.JIT {
		return nil
	}
	for _, s := range []struct {
		set     bool
		setting string
	}{{len(r.Optional) > 0, "optional"}, {r.CreatePending, "create_as pending"}, {r.LinkByEmail, "link_by_email"}} {
		if s.set {
			return fmt.Errorf("provision: %s acts only on users JIT creates: add jit or drop the line", s.setting)
		}
	}
	return nil
}

func (r Rules) optional(attr string) bool { return slices.Contains(r.Optional, attr) }

// missing lists, in a fixed order, the required attributes prof lacks.
func (r Rules) missing(prof mapping.Profile) []string {
	var out []string
	for _, a := range []struct{ name, value string }{
		{mapping.FirstName, prof.FirstName},
		{mapping.LastName, prof.LastName},
		{mapping.Email, prof.Email},
	} {
		if a.value == "" && !r.optional(a.name) {
			out = append(out, a.name)
		}
	}
	return out
}

// CheckEmail is the rule for an email address a configuration lists, in
// the routes' allow and deny user rules (gateway): a mailbox is matched
// exactly (in CanonEmail's form), so a pattern ("*@evil.example"), a bare
// domain ("@evil.example"), white space at an end or a comma list would
// be accepted and then match no one (a deny rule that denies nobody): it
// is refused now, as maildomain.Check refuses such domains. entry has an "@".
func CheckEmail(entry string) error {
	at := strings.LastIndexByte(entry, '@')
	local, domain := entry[:max(at, 0)], entry[at+1:]
	switch {
	case strings.TrimSpace(entry) != entry:
		return fmt.Errorf("%q is not an email address: it has white space at an end", entry)
	case strings.ContainsAny(entry, maildomain.ListSeparators):
		return fmt.Errorf("%q is not an email address: %s", entry, maildomain.SeparateWithSpaces)
	case local == "":
		return fmt.Errorf("%q is not an email address (no mailbox before the @): for every address of a domain, write a domain rule (domain %s)", entry, domain)
	case strings.Contains(local, "*"):
		return fmt.Errorf("%q is not an email address: a wildcard matches no one; for every address of a domain, write a domain rule (domain %s)", entry, domain)
	}
	if maildomain.Check(domain) != nil {
		return fmt.Errorf("%q is not an email address: %q is not a domain name (no wildcard, URL or port after the @)", entry, domain)
	}
	return nil
}

// domainAllowed applies the email domain gate. With a gate set, a login
// without any email cannot prove its domain and is refused.
func (r Rules) domainAllowed(email string) bool {
	if len(r.AllowedDomains) == 0 {
		return true
	}
	domain := emailDomain(email)
	if domain == "" {
		return false
	}
	for _, d := range r.AllowedDomains {
		if maildomain.Canon(maildomain.Bare(d)) == domain {
			return true
		}
	}
	return false
}

// emailDomain is the canonical domain of email (maildomain.Canon of what follows
// its last @), "" when it has none.
func emailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 || at == len(email)-1 {
		return ""
	}
	return maildomain.Canon(email[at+1:])
}

// Denial reasons, stable strings used in the audit trail, metrics and the
// error page.
const (
	ReasonJITDisabled       = "jit_disabled"
	ReasonDeactivated       = "deactivated"
	ReasonPending           = "pending"
	ReasonMissingSubject    = "missing_subject"
	ReasonMissingAttributes = "missing_attributes"
	ReasonEmailConflict     = "email_conflict"
	ReasonDomainNotAllowed  = "domain_not_allowed"
	// ReasonInvalidAttribute: the IdP sent a uniqueUserId or email the
	// store cannot index (store.CheckIndexed: too long, not UTF-8, or with
	// a control character), or an email whose domain is not spelled as
	// IDNA maps it (CheckEmailDomain). Denial.Attribute names it.
	ReasonInvalidAttribute = "invalid_attribute"
	// ReasonDeprovisioned: SCIM deleted this identity and SCIM is enabled
	// for the IdP, so JIT may not create it again.
	ReasonDeprovisioned = "deprovisioned"
	// ReasonExternalIDConflict: the sign-in's subject is the SCIM
	// externalId of a user who already signs in at this IdP under another
	// subject, so adopting that user would give them a second person
	// (login.adoptionConflict).
	ReasonExternalIDConflict = "external_id_conflict"
)

// Denial is a sign-in the rules refused. It is an expected outcome, not a
// failure: the audit event recording it has been committed when Login
// returns it.
type Denial struct {
	Reason  string   // one of the Reason constants
	Missing []string // attribute names, for ReasonMissingAttributes
	// Attribute names the attribute (never its value), for
	// ReasonInvalidAttribute.
	Attribute string
	// Problem says what is wrong with Attribute's value (too_long,
	// not_utf8, control_character, ProblemUnmappedDomain), as the audit
	// event's detail does.
	Problem string
	// Domain is the email's domain (canonical, maildomain.Canon), for
	// ReasonDomainNotAllowed: what an operator asked about the refusal
	// needs to decide between adding it to allowed_domains and telling the
	// person no. A domain is not a person's address, so it may be logged.
	Domain string
	IdP    string
	// UserID is the user the login resolved to (deactivated, pending,
	// domain), empty when there is none. For an email or externalId
	// conflict it stays empty: the holder is not this person.
	UserID string
}

func (d *Denial) Error() string {
	s := "login denied: " + d.Reason
	if len(d.Missing) > 0 {
		s += " (missing " + strings.Join(d.Missing, ", ") + ")"
	}
	if d.Attribute != "" {
		s += " (" + d.Attribute + ")"
	}
	return s
}

// Message explains the denial to the person signing in, in words safe to
// show them: no user IDs, no values, only attribute names an IdP admin can
// act on.
func (d *Denial) Message() string {
	switch d.Reason {
	case ReasonJITDisabled:
		return "Your account has not been set up for this application. Ask your administrator for access."
	case ReasonDeactivated:
		return "Your account has been deactivated."
	case ReasonPending:
		return "Your account is waiting for administrator approval."
	case ReasonMissingSubject:
		return "The identity provider did not send a unique user ID. Ask your identity provider administrator to map the uniqueUserId attribute."
	case ReasonMissingAttributes:
		return "The identity provider did not send these required attributes: " + strings.Join(d.Missing, ", ") +
			". Ask your identity provider administrator to map them."
	case ReasonEmailConflict:
		// No administrator operation links accounts: the administrator
		// resolves it in the data (docs/scim.md, Conflicts).
		return "Your email address already belongs to another account. Ask your administrator, who can resolve it."
	case ReasonDomainNotAllowed:
		return "Your email domain is not allowed to sign in to this application."
	case ReasonDeprovisioned:
		return "Your account has been removed from this application. Ask your administrator for access."
	case ReasonExternalIDConflict:
		// As for an email conflict, the administrator resolves it in the
		// data (docs/scim.md, Conflicts).
		return "The account your directory set up for you is already used by another person's sign-in. Ask your administrator, who can resolve it."
	case ReasonInvalidAttribute:
		why := "too long, or with control characters"
		if d.Problem == ProblemUnmappedDomain {
			why = "its domain is written with characters that stand for others, such as fullwidth letters"
		}
		return "The identity provider sent " + attributeWords(d.Attribute) + " this application cannot store (" + why + "). " +
			"Ask your identity provider administrator to check what it sends as " + d.Attribute + "."
	}
	return "Sign-in was denied."
}

// attributeWords names a profile attribute for the person reading the
// denied page, with its article: the attribute's own name ("uniqueUserId")
// means something only to the IdP administrator, whom the message names it
// to after.
func attributeWords(attr string) string {
	switch attr {
	case mapping.UniqueUserID:
		return "a user ID"
	case mapping.Email:
		return "an email address"
	case mapping.FirstName:
		return "a first name"
	case mapping.LastName:
		return "a last name"
	case mapping.Groups:
		return "a group"
	}
	return "a value"
}

// Provisioner applies Rules against a store in a transaction of its own.
// A sign-in does not use it: signin.Service.SignIn calls Apply inside the
// one transaction that also consumes the single-use ID and starts the
// session (docs/architecture.md). It is for what provisions without a
// sign-in: tests, benchmarks and bench/storeload.
type Provisioner struct {
	Store  store.Store
	Logger *zap.Logger      // nil: no logs
	Now    func() time.Time // nil: time.Now
	// Observe, when set, is told every sign-in's outcome after it
	// committed: action "create", "update" (with no reason) or "deny"
	// (with the denial reason). For metrics.
	Observe func(idp, action, reason string)
}

func (p *Provisioner) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Provisioner) logger() *zap.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return zap.NewNop()
}

// outcome is what one run of the transaction decided. The transaction
// function may run more than once, so it starts from a zero outcome each
// time and logging waits until the commit.
type outcome struct {
	user    *store.User
	denial  *Denial
	created bool
	linked  bool
	// linkReason says why the link was added: "verified_email"
	// (link_by_email) or "external_id" (a SCIM user adopted).
	linkReason string
	changed    []string
	// conflictOwner is the user holding the email an unknown subject (or,
	// on update, a known user's new email) asked for, or the externalId
	// holder an adoption was refused (adoptionConflict).
	conflictOwner string
	// notLinked says why link_by_email (or adoption) did not link a
	// conflict's owner.
	notLinked string
	// emailKept: a force update skipped the email because another user
	// holds it.
	emailKept bool
	// emailReleasedBy is the user a sign-in took the email from
	// (releaseEmail); released is the audit event saying so, which
	// auditRelease writes once the user taking it has an ID.
	emailReleasedBy string
	released        *store.Event
	groupsOverage   bool
}

// login is the input of one sign-in, gathered so the steps below need not
// pass six arguments around.
type login struct {
	idp      string
	rules    Rules
	prof     mapping.Profile
	verified bool
	now      time.Time
}

// Login applies the rules to one verified sign-in inside one store Update
// and returns the user to sign in, or a *Denial. The denial's audit event
// (and, for a pending user, the creation) is committed before Login
// returns it. Any other error means nothing was written, except one
// wrapping store.ErrOutcomeUnknown: the commit may have taken.
func (p *Provisioner) Login(ctx context.Context, idpName string, rules Rules, prof mapping.Profile, emailVerified bool) (*store.User, error) {
	return p.LoginAndGrant(ctx, idpName, rules, prof, emailVerified, nil)
}

// Grant writes what an allowed sign-in gives the user (a session) inside
// the transaction that applied the rules. An error from it rolls the whole
// sign-in back.
type Grant func(tx store.Tx, u *store.User) error

// LoginAndGrant is Login that also runs grant, when the sign-in is allowed,
// in the same transaction: a sign-in then costs one durable commit instead
// of two, and no session can outlive a rollback of the user it belongs to.
func (p *Provisioner) LoginAndGrant(ctx context.Context, idpName string, rules Rules, prof mapping.Profile, emailVerified bool, grant Grant) (*store.User, error) {
	var res *Result
	err := p.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		res, err = Apply(tx, idpName, rules, prof, emailVerified, p.now())
		if err != nil || res.Denial != nil || grant == nil {
			return err
		}
		return grant(tx, res.User)
	})
	if err != nil {
		return nil, fmt.Errorf("provision: sign-in via %s: %w", idpName, err)
	}
	res.Log(p.logger())
	if p.Observe != nil {
		res.Observe(func(action, reason string) { p.Observe(idpName, action, reason) })
	}
	if res.Denial != nil {
		return nil, res.Denial
	}
	return res.User, nil
}

// Result is what the rules decided for one sign-in. User is set unless
// the sign-in was denied (Denial); a pending user created by this sign-in
// is both.
type Result struct {
	User   *store.User
	Denial *Denial
	// Created and Changed say what was written: a new user, or the names
	// of the fields an update changed.
	Created bool
	Changed []string
	// GroupsOverage: the IdP sent a pointer to the groups instead of them,
	// so the stored groups were kept (and an idp.groups_overage event
	// written).
	GroupsOverage bool
	// ReleasedFrom is the user a re-issued address was taken from
	// (email_released), "" when none was: their sessions, cached here and
	// on other instances, still carry the address until forgotten.
	ReleasedFrom string

	in  login
	out outcome
}

// Apply applies rules to one verified sign-in inside tx, a read-write
// transaction the caller owns: the sign-in transaction, which also
// consumes the assertion's single-use IDs and writes the session, so that
// a sign-in is one durable commit. It writes the audit events for what it
// decided. It may run more than once (store.Store.Update may rerun its
// function), so it depends only on what it reads through tx; log the
// Result once tx has committed. Any error means the caller must roll back.
func Apply(tx store.Tx, idpName string, rules Rules, prof mapping.Profile, emailVerified bool, now time.Time) (*Result, error) {
	r := &Result{in: login{idp: idpName, rules: rules, prof: cleanProfile(prof), verified: emailVerified, now: now}}
	if err := r.in.apply(tx, &r.out); err != nil {
		return nil, err
	}
	if r.out.groupsOverage && r.out.denial == nil {
		ev := r.in.event(store.EventGroupsOverage, r.out.user.ID)
		ev.Reason = "groups_overage"
		if err := tx.Audit(ev); err != nil {
			return nil, fmt.Errorf("audit groups overage: %w", err)
		}
	}
	r.User, r.Denial = r.out.user, r.out.denial
	r.Created, r.Changed, r.GroupsOverage = r.out.created, r.out.changed, r.out.groupsOverage
	r.ReleasedFrom = r.out.emailReleasedBy
	return r, nil
}

// Log writes one structured line per create, link, update, conflict,
// overage and denial. Call it after the commit, so that a retried
// transaction logs once. Names and emails are never logged; IDs and
// attribute names are.
func (r *Result) Log(log *zap.Logger) { logOutcome(log, &r.in, &r.out) }

// Observe tells fn what the sign-in did, for metrics: "create", "update"
// and "overage" (no reason), and "deny" (with the denial reason); a
// pending user created by this sign-in is both created and denied, and
// a sign-in whose groups the IdP sent as a pointer (Entra's overage: the
// user's groups were kept, stale or empty) is "overage" besides, as it
// is logged and audited (idp.groups_overage), so that it can be alerted
// on. A known user signing in unchanged is nothing.
func (r *Result) Observe(fn func(action, reason string)) {
	if r.out.created {
		fn("create", "")
	}
	if len(r.out.changed) > 0 && !r.out.created {
		fn("update", "")
	}
	if r.out.groupsOverage && r.out.denial == nil {
		fn("overage", "")
	}
	if r.out.denial != nil {
		fn("deny", r.out.denial.Reason)
	}
}

// cleanProfile trims stray whitespace from the descriptive attributes.
// The subject is left exactly as sent: it is compared exactly.
func cleanProfile(p mapping.Profile) mapping.Profile {
	p.FirstName = strings.TrimSpace(p.FirstName)
	p.LastName = strings.TrimSpace(p.LastName)
	p.Email = strings.TrimSpace(p.Email)
	return p
}

func (in *login) event(typ, userID string) store.Event {
	return store.Event{Time: in.now, Type: typ, IdP: in.idp, UserID: userID, Subject: in.prof.UniqueUserID}
}

// deny records the denial in out and audits it; the caller returns the
// result so that the transaction commits the audit event.
func (in *login) deny(tx store.Tx, out *outcome, reason, userID string, missing []string) error {
	return in.denyWith(tx, out, reason, userID, missing, nil)
}

// denyWith is deny with extra audit detail.
func (in *login) denyWith(tx store.Tx, out *outcome, reason, userID string, missing []string, detail map[string]string) error {
	out.denial = &Denial{Reason: reason, IdP: in.idp, UserID: userID, Missing: missing}
	ev := in.event(store.EventLoginDenied, userID)
	ev.Reason = reason
	ev.Detail = detail
	if len(missing) > 0 {
		if ev.Detail == nil {
			ev.Detail = map[string]string{}
		}
		ev.Detail["missing"] = strings.Join(missing, ",")
	}
	if err := tx.Audit(ev); err != nil {
		return fmt.Errorf("audit denial: %w", err)
	}
	return nil
}

func (in *login) apply(tx store.Tx, out *outcome) error {
	prof, rules := in.prof, in.rules
	if prof.UniqueUserID == "" {
		return in.deny(tx, out, ReasonMissingSubject, "", nil)
	}
	// The values JIT indexes (the subject as link and externalId, the
	// email as email and userName) must be ones the store can key on:
	// refuse the sign-in here, audited, rather than fail at PutUser with
	// an internal error and no trace.
	if attr, problem := invalidAttribute(prof); attr != "" {
		if attr == mapping.UniqueUserID {
			// Neither the audit event nor the log carries a value
			// that could be 1 KiB or hold terminal escapes.
			in.prof.UniqueUserID = ""
		}
		err := in.denyWith(tx, out, ReasonInvalidAttribute, "", nil, map[string]string{"attribute": attr, "problem": problem})
		out.denial.Attribute, out.denial.Problem = attr, problem
		return err
	}
	u, adopted, err := in.knownUser(tx)
	if err != nil {
		return err
	}
	if adopted && in.signsInHere(u) {
		return in.adoptionConflict(tx, out, u)
	}
	var takeFrom *store.User // the holder of the email a new user takes
	if adopted {
		// The gates below still apply before the link is written.
		out.linked, out.linkReason = true, "external_id"
	}

	if u == nil {
		ts, err := in.tombstone(tx)
		if err != nil {
			return err
		}
		if ts != nil {
			detail := map[string]string{"deleted_user": ts.UserID}
			if ts.Home != nil {
				detail["home_idp"] = ts.Home.IdP
			}
			return in.denyWith(tx, out, ReasonDeprovisioned, "", nil, detail)
		}
		if !rules.JIT {
			return in.deny(tx, out, ReasonJITDisabled, "", nil)
		}
		if missing := rules.missing(prof); len(missing) > 0 {
			return in.deny(tx, out, ReasonMissingAttributes, "", missing)
		}
		// Nothing is locked yet: this sign-in names no user (knownUser).
		owner, err := emailOwner(tx, prof.Email, true)
		if err != nil {
			return err
		}
		if owner != nil {
			why := in.linkRefusal(owner)
			switch {
			case why == "":
				// The owner must still pass the same gates as a known
				// user before the link is written; checks below do that.
				u = owner
				out.linked, out.linkReason = true, "verified_email"
			case in.signsInHere(owner) && in.mayTakeEmail(owner) && !in.rules.CreatePending:
				// The IdP re-issued the address of one of its users
				// (Okta keeps a leaver deactivated, holding it) to a
				// person signing in for the first time: the rule a
				// force update follows for a known user, so the new
				// holder is not locked out where an existing one would
				// not be. Only an owner who signs in here: one SCIM
				// provisioned and who never signed in may be this very
				// person under another externalId (linkRefusal), whom
				// taking it would make a second account. Not for a user
				// created pending: one nobody approved yet takes nothing
				// from an approved one.
				takeFrom = owner
			default:
				return in.conflict(tx, out, owner.ID, why)
			}
		}
	}

	if u != nil {
		if !u.Active {
			return in.deny(tx, out, ReasonDeactivated, u.ID, nil)
		}
		if u.Pending {
			return in.deny(tx, out, ReasonPending, u.ID, nil)
		}
	}
	email := prof.Email
	if email == "" && u != nil {
		email = u.Email
	}
	if !rules.domainAllowed(email) {
		uid := ""
		if u != nil {
			uid = u.ID
		}
		domain := emailDomain(email)
		if err := in.denyWith(tx, out, ReasonDomainNotAllowed, uid, nil, map[string]string{"domain": domain}); err != nil {
			return err
		}
		out.denial.Domain = domain
		return nil
	}

	if u == nil {
		return in.create(tx, out, takeFrom)
	}
	return in.update(tx, out, u)
}

// knownUser returns the user this sign-in's subject already names, or
// nil, and whether it was found by SCIM's externalId rather than by a
// link (a user to adopt: the link is not written yet), its row locked.
// The link comes first: it is what an earlier sign-in at this IdP
// recorded, so once written it decides, whatever externalId SCIM gives
// any user later. Only without one is the subject looked up as an
// externalId, for a user SCIM provisioned before their first sign-in
// (SCIM's externalId is the IdP's uniqueUserId), and only among this
// IdP's users: an externalId names a person only in the directory that
// wrote it, and the same value from another IdP is someone else.
//
// A force update may write a second user, the holder of the sign-in's
// email (forceProfile, releaseEmail): then both rows are locked in ID
// order (store.Tx.LockUsers) before the user's is read locked. The
// holder's lock taken after the user's would be out of the store's order
// whenever the holder's ID is the lower, and deadlock with a group change
// holding both, or with the holder's own sign-in taking this user's
// address (a swap). So under force the user is looked up first without a
// row lock: none found, the lookups' key locks keep it so until commit,
// and a new user costs no second lookup; found, forceProfile reads the
// holder again once locked (lockHolder).
func (in *login) knownUser(tx store.Tx) (u *store.User, adopted bool, err error) {
	if in.rules.Update == UpdateForce && in.prof.Email != "" {
		u, adopted, err = in.lookUp(tx, tx.UserHolding)
		if err != nil || u == nil {
			return u, adopted, err
		}
		if err := in.lockWithHolder(tx, u); err != nil {
			return nil, false, err
		}
	}
	return in.lookUp(tx, func(key store.UserKey, idp, value string) (*store.User, error) {
		if key == store.KeyLink {
			return tx.UserByLink(idp, value)
		}
		return tx.UserByExternalID(idp, value)
	})
}

// lookUp is knownUser's lookup, by link and then by externalId, through
// read (locking the row or not).
func (in *login) lookUp(tx store.Tx, read func(key store.UserKey, idp, value string) (*store.User, error)) (u *store.User, adopted bool, err error) {
	u, err = read(store.KeyLink, in.idp, in.prof.UniqueUserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, false, fmt.Errorf("look up user: %w", err)
	default:
		return u, false, nil
	}
	u, err = read(store.KeyExternalID, in.idp, in.prof.UniqueUserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("look up user by external id: %w", err)
	}
	return u, true, nil
}

// adoptionConflict refuses to adopt holder, the user whose SCIM externalId
// is this sign-in's subject, because holder already signs in at this IdP
// under another subject: to the IdP that is another person, the rule
// linkRefusal keeps for linking by email. Adoption is for a user SCIM
// provisioned before their first sign-in (knownUser); a directory that
// later writes a new person's ID onto a user who signs in (Okta matching
// by userName, a leaver's username given to a newcomer; or a SCIM token
// in the wrong hands) would otherwise hand that user's account, and
// everything the apps keep under its ID, to whoever signs in with it
// first. Nothing is written but the audit event, on the holder's
// history; re-keying a user on purpose deletes the old one (docs/scim.md,
// Conflicts).
func (in *login) adoptionConflict(tx store.Tx, out *outcome, holder *store.User) error {
	const why = "holder linked to another subject at this idp"
	out.denial = &Denial{Reason: ReasonExternalIDConflict, IdP: in.idp}
	out.conflictOwner, out.notLinked = holder.ID, why
	ev := in.event(store.EventJITConflict, holder.ID)
	ev.Reason = ReasonExternalIDConflict
	ev.Detail = map[string]string{"not_linked": why}
	if err := tx.Audit(ev); err != nil {
		return fmt.Errorf("audit externalId conflict: %w", err)
	}
	return nil
}

// lockWithHolder locks u and the holder of the sign-in's email in ID
// order when a force update of u would take the address from them (see
// knownUser); any other sign-in writes one existing user at most.
func (in *login) lockWithHolder(tx store.Tx, u *store.User) error {
	if !in.changesEmail(u) {
		return nil
	}
	holder, err := emailOwner(tx, in.prof.Email, false)
	if err != nil || holder == nil || holder.ID == u.ID || !in.mayTakeEmail(holder) {
		return err
	}
	if err := tx.LockUsers([]string{u.ID, holder.ID}); err != nil {
		return fmt.Errorf("lock users: %w", err)
	}
	return nil
}

// tombstone returns the tombstone that refuses this sign-in as
// deprovisioned, or nil. One a SCIM deletion left at an IdP SCIM does not
// manage (store.Tombstone.Home) is heeded at any IdP while its home
// tombstone stands: the directory removed the person, and a second IdP
// vouching for their address must not bring them back (docs/scim.md,
// Deprovisioning). Any other is heeded only while SCIM manages this IdP
// (Rules.SCIMManaged): an administrator's delete keeps JIT out only there,
// and turning SCIM off hands the users back to JIT.
func (in *login) tombstone(tx store.Tx) (*store.Tombstone, error) {
	ts, err := tx.Tombstone(in.idp, in.prof.UniqueUserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up tombstone: %w", err)
	}
	if ts.Home == nil {
		if !in.rules.SCIMManaged {
			return nil, nil
		}
		return ts, nil
	}
	switch _, err := tx.Tombstone(ts.Home.IdP, ts.Home.Subject); {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil // lifted with its home (a SCIM create there)
	case err != nil:
		return nil, fmt.Errorf("look up tombstone: %w", err)
	}
	return ts, nil
}

// invalidAttribute returns the first attribute of prof the store could not
// index (store.CheckIndexed), or the email when CheckEmailDomain refuses
// it, and what is wrong with it: too_long, not_utf8, control_character or
// ProblemUnmappedDomain; "" when all are fine. Only names leave it, never
// values.
func invalidAttribute(prof mapping.Profile) (attr, problem string) {
	for _, a := range []struct{ name, value string }{
		{mapping.UniqueUserID, prof.UniqueUserID},
		{mapping.Email, prof.Email},
	} {
		switch err := store.CheckIndexed(a.name, a.value); {
		case err == nil:
		case errors.Is(err, store.ErrValueTooLong):
			return a.name, "too_long"
		case errors.Is(err, store.ErrNotUTF8):
			return a.name, "not_utf8"
		default:
			return a.name, "control_character"
		}
	}
	if CheckEmailDomain(prof.Email) != nil {
		return mapping.Email, ProblemUnmappedDomain
	}
	return "", ""
}

// ProblemUnmappedDomain is the problem (audit detail, Denial.Problem) of an
// email CheckEmailDomain refuses.
const ProblemUnmappedDomain = "unmapped_domain"

// CheckEmailDomain is the rule on the domain of an email written to the
// store (by JIT and by SCIM): it must be spelled as IDNA maps it, up to
// letter case, Unicode normalization and the root's trailing dot; that
// is, in lower case (lowerLocal's, the one store.FoldName agrees with) it
// is maildomain.Canon's xn-- form or that form's Unicode. A domain
// written with characters IDNA maps to others ("ｂücher.example", with
// a fullwidth ｂ, or "bücher。example", an ideographic full stop) is
// refused: CanonEmail makes it one mailbox with "bücher.example", but no
// lookup of that mailbox's holder (emailSpellings) reads it, as the set
// of such spellings has no bound, so a sign-in with the plain spelling
// would make a second user with the same CanonEmail, passing the first's
// `allow user` rules. A name IDNA refuses (an underscore) is compared in
// maildomain.Canon's lower case only and passes unless lowerLocal's
// lower case is another ("İ"). The error names the two forms accepted.
func CheckEmailDomain(email string) error {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return nil
	}
	domain := email[at+1:]
	d, ascii := lowerLocal(strings.TrimSuffix(domain, ".")), maildomain.Canon(domain)
	if d == ascii {
		return nil
	}
	u, err := idna.Lookup.ToUnicode(ascii)
	if err == nil && d == u {
		return nil
	}
	if err != nil || u == ascii {
		return fmt.Errorf("the domain must be written as %q", ascii)
	}
	return fmt.Errorf("the domain must be written as %q or %q", u, ascii)
}

// linkRefusal says why link_by_email may not link this sign-in to owner,
// the user holding its email, or "" when it may.
//
// An owner this IdP's SCIM gave another externalId, who never signed in,
// is reported first, whatever link_by_email says: it is the likeliest
// cause by far (a directory whose externalId is not the sign-in's user ID,
// as Entra's default mailNickname against the objectId the preset signs in
// with), it refuses with link_by_email on too, and the fix is in the
// directory's mapping (docs/scim.md), not in link_by_email.
func (in *login) linkRefusal(owner *store.User) string {
	switch {
	case owner.IdP == in.idp && owner.ExternalID != "" && owner.ExternalID != in.prof.UniqueUserID && !in.signsInHere(owner):
		// Their externalId is their ID at this IdP (README, SCIM:
		// "SCIM's externalId is the IdP's uniqueUserId"): a second ID is
		// another person, or the directory's externalId is not the ID
		// the sign-in carries.
		return "scim externalId differs from the sign-in's user ID"
	case !in.rules.LinkByEmail:
		return "link_by_email off"
	case !in.verified:
		return "email not verified"
	case CanonEmail(owner.Email) != CanonEmail(in.prof.Email):
		// The store found the owner by full Unicode case folding, under
		// which "straße.de" and "strasse.de" are one key though they are
		// different domains, with different mailboxes, and "ſam" (long
		// s) is "sam". Only spellings of the same mailbox may link.
		return "email equal only under case folding"
	case in.signsInHere(owner):
		// The owner already signs in with another ID at this IdP: a
		// second ID there is another person, typically one who was given
		// the address after the owner (a re-issued mailbox: apply gives
		// it to them when mayTakeEmail allows).
		return "owner linked to another subject at this idp"
	case !owner.EmailVerified:
		// Nobody vouched for the address the owner holds: a SAML IdP
		// without trust_email, a multi-tenant or allow_unverified_email
		// one, or another IdP's SCIM client put it there, any of which
		// anyone may have used to claim it before its person first signed
		// in. Linking would hand that person's sign-in to whoever the
		// owner's links are.
		return "owner email not verified"
	}
	return ""
}

// signsInHere says whether owner has a link at this IdP. Called for the
// holder of the sign-in's email, who is not the user its subject names
// (knownUser looked that up first), it means the owner signs in here under
// another subject: to the IdP, another person.
func (in *login) signsInHere(owner *store.User) bool {
	return slices.ContainsFunc(owner.Links, func(l store.Link) bool { return l.IdP == in.idp })
}

// CanonEmail is the form in which two emails are spellings of one mailbox
// when equal: the local part in NFC and lower-cased rune by rune (which,
// unlike case folding, keeps "ſam" from "sam"), the domain in maildomain.Canon's
// form ("bücher.example" is "xn--bcher-kva.example", "straße.de" is not
// "strasse.de"). link_by_email links only such spellings, and the routes'
// user rules (gateway) compare emails in it.
//
// It never makes one what the store's email index (store.FoldName) keeps
// apart, as the lookups of a mailbox's holder (emailOwner, emailSpellings)
// read only that index: an address equal in this form to a user's but
// kept apart there would be given to a second user, who would then pass
// the first's `allow user` rules (lowerLocal).
func CanonEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return lowerLocal(email)
	}
	return lowerLocal(email[:at]) + "@" + maildomain.Canon(email[at+1:])
}

// lowerLocal is a local part in NFC and lower case, with the Greek final
// sigma as the one lower case "Σ" has: "ΝΊΚΟΣ" lower-cased letter by
// letter ends in "σ", where the word is written "νίκος".
//
// A letter is lowered only where store.FoldName gives its lower case the
// key it gives the letter, so that two local parts equal here are one key
// there. Go's lower case of "İ" is "i", which FoldName keeps apart from
// it ("i" and U+0307): "İ" becomes its folded form, "i̇", instead; a letter
// whose fold is not its own fold again (x/text's Cherokee) stays as it is.
// The whole is checked against FoldName too, which makes that hold for
// any string, not only letter by letter: failing, the local part is only
// in NFC.
func lowerLocal(s string) string {
	ascii := true
	for i := 0; i < len(s) && ascii; i++ {
		ascii = s[i] < utf8.RuneSelf
	}
	if ascii {
		// NFC is the identity, lower case FoldName's.
		return strings.ToLower(s)
	}
	n := norm.NFC.String(s)
	var b strings.Builder
	b.Grow(len(n))
	for _, r := range n {
		lr := unicode.ToLower(r)
		if lr == 'ς' {
			lr = 'σ'
		}
		switch {
		case lr == r || r < utf8.RuneSelf:
			b.WriteRune(lr)
		case store.FoldName(string(lr)) == store.FoldName(string(r)):
			b.WriteRune(lr)
		default:
			f := store.FoldName(string(r))
			if store.FoldName(f) != f {
				f = string(r)
			}
			b.WriteString(f)
		}
	}
	if l := b.String(); store.FoldName(l) == store.FoldName(n) {
		return l
	}
	return n
}

// EmailHolder returns the user holding email under any spelling of its
// mailbox (CanonEmail), or nil: the lookup a JIT sign-in makes, for the
// other writers of a user's email (SCIM), so that one mailbox is one user
// whichever wrote it. It locks no user's row (emailOwner without lock), as
// a writer already holding the row of the user it writes must not take
// another's out of ID order; in PostgreSQL it takes the key lock of each
// spelling it reads, in store.FoldName order, as a sign-in does.
func EmailHolder(tx store.Tx, email string) (*store.User, error) {
	return emailOwner(tx, email, false)
}

// emailOwner returns the user holding email, under any of its spellings
// (emailSpellings), or nil; when a store made before the spellings were
// one holds two of them, the holder of the one first in emailSpellings'
// order.
//
// It reads the spellings in store.FoldName order all the same: in
// PostgreSQL each read locks its key, and two sign-ins of one mailbox
// under two spellings (each first in its own emailSpellings) would
// otherwise take the same locks in opposite orders and deadlock, costing
// each a deadlock_timeout and a rerun. A spelling after the holder's found
// is not read.
//
// With lock, each read locks the user's row too (UserByEmail), as a
// sign-in that holds no other user's row may: the owner is then written
// (linked) or released at once. Without, none (UserHolding): a sign-in
// holding its own user's row must lock a second user's only in ID order
// (store.Tx.LockUsers), and most often it only checks the owner.
func emailOwner(tx store.Tx, email string, lock bool) (*store.User, error) {
	if email == "" {
		return nil, nil
	}
	spellings := emailSpellings(email)
	order := make([]int, len(spellings))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return strings.Compare(store.FoldName(spellings[a]), store.FoldName(spellings[b]))
	})
	var owner *store.User
	best := len(spellings) // emailSpellings position of owner's spelling
	for _, i := range order {
		if i > best {
			continue
		}
		read := tx.UserByEmail
		if !lock {
			read = func(email string) (*store.User, error) { return tx.UserHolding(store.KeyEmail, "", email) }
		}
		u, err := read(spellings[i])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up email owner: %w", err)
		}
		owner, best = u, i
	}
	return owner, nil
}

// emailSpellings returns email, then the other spellings of its mailbox
// that CanonEmail makes one but the store's email index (store.FoldName)
// keeps apart: the domain in its xn-- and Unicode forms, each with and
// without the root's trailing dot. Looking the owner up under each keeps
// one mailbox from becoming two users ("ada@bücher.example" from one IdP,
// "ada@xn--bcher-kva.example" from another), without changing the index's
// key, which existing stores are built on. Case and composition need no
// spelling of their own: FoldName folds them, and no two local parts it
// keeps apart are one to CanonEmail (lowerLocal).
func emailSpellings(email string) []string {
	out := []string{email}
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return out
	}
	local, domain := email[:at], strings.TrimSuffix(email[at+1:], ".")
	ascii := maildomain.Canon(domain)
	domains := []string{domain, ascii}
	if u, err := idna.Lookup.ToUnicode(ascii); err == nil {
		domains = append(domains, u)
	}
	for _, d := range domains {
		for _, s := range []string{local + "@" + d, local + "@" + d + "."} {
			if !slices.ContainsFunc(out, func(o string) bool { return store.FoldName(o) == store.FoldName(s) }) {
				out = append(out, s)
			}
		}
	}
	return out
}

// conflict denies an unknown subject whose email another user owns. The
// audit event names the owner, so that the owner's history shows the
// attempt.
// why is linkRefusal's answer.
func (in *login) conflict(tx store.Tx, out *outcome, ownerID, why string) error {
	out.denial = &Denial{Reason: ReasonEmailConflict, IdP: in.idp}
	out.conflictOwner, out.notLinked = ownerID, why
	ev := in.event(store.EventJITConflict, ownerID)
	ev.Reason = ReasonEmailConflict
	ev.Detail = map[string]string{"not_linked": why}
	if err := tx.Audit(ev); err != nil {
		return fmt.Errorf("audit conflict: %w", err)
	}
	return nil
}

// groupsFrom returns the groups a sign-in of u (nil: the user it creates)
// grants, SCIM groups aside, and the defaults among them, which the user
// records (store.User.DefaultGroups): the IdP's groups, when it sent a
// usable list, plus the current defaults (defaultsFor). When the IdP's
// groups are unknown (not sent, or an overage pointer) the stored groups
// stand for them, less the defaults the last sign-in recorded: a default
// the operator removed goes and a new one comes at the next sign-in,
// whether the IdP sends groups or not (Google never does). A name the
// token also sent goes with its default then, until a sign-in that
// carries the groups again; a user stored before the defaults were
// recorded loses none of theirs at that first sign-in.
func (in *login) groupsFrom(u *store.User) (groups, defaults []string) {
	defaults = store.NormalGroupNames(in.defaultsFor(u))
	var idpGroups []string
	switch {
	case in.prof.HasGroups && !in.prof.GroupsOverage:
		idpGroups = in.prof.Groups
	case u != nil:
		idpGroups = slices.DeleteFunc(slices.Clone(u.Groups), func(g string) bool { return slices.Contains(u.DefaultGroups, g) })
	}
	return store.NormalGroupNames(append(slices.Clone(idpGroups), defaults...)), defaults
}

// defaultsFor returns the default_groups a sign-in of u (nil: the user it
// creates) gives them. default_groups are for users JIT owns: a user SCIM
// owns gets none, whether SCIM created them (a `deny group` on a default,
// as for JIT guests, must not catch the directory's people) or adopted
// them from JIT (the directory decides their groups now: the defaults they
// recorded go at their next sign-in, groupsFrom).
func (in *login) defaultsFor(u *store.User) []string {
	if u != nil && u.Source == store.SourceSCIM {
		return nil
	}
	return in.rules.DefaultGroups
}

// create creates the user this sign-in names. takeFrom, when not nil, is
// the user holding the sign-in's email whom mayTakeEmail lets it take the
// address from (apply); it is released first, as a force update would.
func (in *login) create(tx store.Tx, out *outcome, takeFrom *store.User) error {
	prof := in.prof
	if takeFrom != nil {
		if err := in.releaseEmail(tx, out, takeFrom); err != nil {
			return err
		}
	}
	groups, defaults := in.groupsFrom(nil)
	out.groupsOverage = prof.GroupsOverage
	u := &store.User{
		Email:         prof.Email,
		EmailVerified: in.verified && prof.Email != "",
		FirstName:     prof.FirstName,
		LastName:      prof.LastName,
		Groups:        groups,
		DefaultGroups: defaults,
		Active:        true,
		Pending:       in.rules.CreatePending,
		Source:        store.SourceJIT,
		Links:         []store.Link{{IdP: in.idp, Subject: prof.UniqueUserID}},
		Created:       in.now,
		Updated:       in.now,
		// What SCIM matching looks for: apply found no user holding
		// this externalId, so it is free.
		IdP:        in.idp,
		ExternalID: prof.UniqueUserID,
	}
	name, err := JITUserName(tx, u)
	if err != nil {
		return err
	}
	u.UserName = name
	if !u.Pending {
		u.LastLogin = in.now
	}
	if err := tx.PutUser(u); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	if u.UserName == "" {
		// Its ID (JITUserName), which the store gave it just now.
		u.UserName = u.ID
		if err := tx.PutUser(u); err != nil {
			return fmt.Errorf("create user: set user name: %w", err)
		}
	}
	if err := in.auditRelease(tx, out, u.ID); err != nil {
		return err
	}
	out.created = true
	out.user = u
	ev := in.event(store.EventUserCreated, u.ID)
	ev.Detail = map[string]string{"source": store.SourceJIT}
	if u.Pending {
		ev.Detail["pending"] = "true"
	}
	if prof.GroupsOverage {
		ev.Detail["groups_overage"] = "true"
	}
	if err := tx.Audit(ev); err != nil {
		return fmt.Errorf("audit creation: %w", err)
	}
	if u.Pending {
		return in.deny(tx, out, ReasonPending, u.ID, nil)
	}
	return in.succeed(tx, u)
}

// JITUserName returns the userName JIT derives for u from its email: the
// email when no user other than u holds it as their userName, else (and
// when u has no email) u's ID, or "" for a u not yet stored, which the
// caller then gives its ID once the store has assigned one. Never none: a
// userName SCIM shows must be one the store indexes, or a list would show
// two users under one name, a filter on it would find only one of them,
// and a PUT of what a GET returned would be refused as taken. The ID is
// random, chosen by the store: another user holds it only if a directory
// copied it into their userName. SCIM shows a
// user stored without a userName (from before this rule, or a bolt
// migration's clash) the one this gives. The holder is only checked, so
// its row is not locked (UserHolding): the sign-in holds its own user's,
// and a lock on the holder's after it would be out of the store's order
// whenever the holder's ID is the lower.
func JITUserName(tx store.Tx, u *store.User) (string, error) {
	if u.Email == "" {
		return u.ID, nil
	}
	holder, err := tx.UserHolding(store.KeyUserName, "", u.Email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return u.Email, nil
	case err != nil:
		return "", fmt.Errorf("look up user name: %w", err)
	case holder.ID == u.ID:
		return u.Email, nil
	}
	return u.ID, nil
}

// rederiveUserName applies JITUserName again to a JIT user whose email
// changed from old, when its userName is still the one JIT derived (old,
// its ID, or none, as stored before JITUserName gave the ID), and says
// whether it changed. SCIM clients look users up by userName, and a stale
// one would find this user under an address that may since have been
// given to someone else. A userName SCIM or an admin set is theirs.
func rederiveUserName(tx store.Tx, u *store.User, old string) (bool, error) {
	if u.Source != store.SourceJIT || u.UserName != "" && u.UserName != old && u.UserName != u.ID {
		return false, nil
	}
	name, err := JITUserName(tx, u)
	if err != nil || name == u.UserName {
		return false, err
	}
	u.UserName = name
	return true, nil
}

// followEmail keeps the userName JIT derived from the email in step when a
// force update changes the email from old to u.Email (rederiveUserName):
// it moves to the new email when that is free as a userName, and is the
// user's ID otherwise (externalId still matches).
func (in *login) followEmail(tx store.Tx, out *outcome, u *store.User, old string) error {
	changed, err := rederiveUserName(tx, u, old)
	if changed {
		out.changed = append(out.changed, "user_name")
	}
	return err
}

// mayTakeEmail says whether a sign-in may take the address this IdP gives
// the signing-in user from holder, the user holding it: a force update of
// a known user, or a new user's creation (apply). Only
// when this IdP alone speaks for holder (every link of theirs is here, or
// they are this IdP's SCIM user with no link elsewhere), it vouched for
// the address (in.verified), and the two are one mailbox (CanonEmail):
// the IdP then says the address is no longer holder's (it swapped two
// people's addresses, or re-issued one), and keeping it there would leave
// the signing-in user with a stale one on every sign-in, which no admin
// operation can change. A holder another IdP speaks for keeps it: this
// IdP cannot say what the other gives them. Only with update force: with
// import, the stored records win over what a sign-in says.
func (in *login) mayTakeEmail(holder *store.User) bool {
	if in.rules.Update != UpdateForce || !in.verified || CanonEmail(holder.Email) != CanonEmail(in.prof.Email) {
		return false
	}
	if holder.IdP != "" && holder.IdP != in.idp ||
		slices.ContainsFunc(holder.Links, func(l store.Link) bool { return l.IdP != in.idp }) {
		return false
	}
	return len(holder.Links) > 0 || holder.Source == store.SourceSCIM && holder.IdP == in.idp
}

// releaseEmail clears holder's email, which a sign-in is about to give
// its user (mayTakeEmail), in the same transaction: holder gets their
// new address at their own next sign-in (or SCIM write). The userName JIT
// derived from it goes too (their ID replaces it: rederiveUserName), and
// so does the address in SCIM's list, so that a SCIM write does not bring
// it back. Audited (auditRelease) once the user taking it has an ID: a
// new user gets one only when written, after the address is free.
func (in *login) releaseEmail(tx store.Tx, out *outcome, holder *store.User) error {
	old := holder.Email
	fields := []string{"email"}
	holder.Email, holder.EmailVerified = "", false
	if n := len(holder.Emails); n > 0 {
		holder.Emails = slices.DeleteFunc(slices.Clone(holder.Emails), func(e store.Email) bool {
			return store.FoldName(e.Value) == store.FoldName(old)
		})
		if len(holder.Emails) != n {
			fields = append(fields, "emails")
		}
	}
	if changed, err := rederiveUserName(tx, holder, old); err != nil {
		return fmt.Errorf("release email: %w", err)
	} else if changed {
		fields = append(fields, "user_name")
	}
	holder.Updated = store.NextStamp(holder.Updated, in.now)
	if err := tx.PutUser(holder); err != nil {
		return fmt.Errorf("release email: %w", err)
	}
	ev := in.event(store.EventUserUpdated, holder.ID)
	ev.Subject = holder.ExternalID
	if i := slices.IndexFunc(holder.Links, func(l store.Link) bool { return l.IdP == in.idp }); i >= 0 {
		ev.Subject = holder.Links[i].Subject
	}
	ev.Reason = "email_released"
	ev.Detail = map[string]string{"fields": strings.Join(fields, ",")}
	out.emailReleasedBy, out.released = holder.ID, &ev
	return nil
}

// auditRelease audits releaseEmail's release, if there was one, on the
// holder as user.updated with reason email_released and to, the user who
// took the address (never the address).
func (in *login) auditRelease(tx store.Tx, out *outcome, to string) error {
	if out.released == nil {
		return nil
	}
	out.released.Detail["released_to"] = to
	if err := tx.Audit(*out.released); err != nil {
		return fmt.Errorf("audit email release: %w", err)
	}
	return nil
}

// scimGroupNames returns the display names of the user's SCIM groups.
func scimGroupNames(tx store.Tx, userID string) ([]string, error) {
	refs, err := tx.GroupsOfUser(userID)
	if err != nil {
		return nil, fmt.Errorf("look up groups: %w", err)
	}
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.DisplayName
	}
	return names, nil
}

func (in *login) update(tx store.Tx, out *outcome, u *store.User) error {
	prof := in.prof
	if out.linked {
		u.Links = append(u.Links, store.Link{IdP: in.idp, Subject: prof.UniqueUserID})
		ev := in.event(store.EventJITLinked, u.ID)
		ev.Reason = out.linkReason
		if err := tx.Audit(ev); err != nil {
			return fmt.Errorf("audit link: %w", err)
		}
	}
	if u.ExternalID == "" && u.Source != store.SourceSCIM && (u.IdP == "" || u.IdP == in.idp) {
		// A user from before SCIM (or admin-made) gets the externalId
		// SCIM matching looks for, unless someone holds it already: only
		// checked, so not locked (see JITUserName).
		_, err := tx.UserHolding(store.KeyExternalID, in.idp, prof.UniqueUserID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			u.IdP, u.ExternalID = in.idp, prof.UniqueUserID
			out.changed = append(out.changed, "external_id")
		case err != nil:
			return fmt.Errorf("look up user by external id: %w", err)
		}
	}
	if in.rules.Update == UpdateForce {
		if err := in.forceProfile(tx, out, u); err != nil {
			return err
		}
		// The sign-in's groups replace the login part only: SCIM
		// memberships are another source and stay. This holds for a
		// user SCIM owns too: a directory that provisions users (or
		// groups by names the token does not use, as Entra's object
		// IDs) cannot remove a group the token granted, so kept here
		// it would outlive its removal at the IdP for good.
		groups, defaults := in.groupsFrom(u)
		scim, err := scimGroupNames(tx, u.ID)
		if err != nil {
			return err
		}
		if groups = store.NormalGroupNames(append(groups, scim...)); !sameSet(groups, u.Groups) {
			u.Groups = groups
			out.changed = append(out.changed, FieldGroups)
		}
		// Bookkeeping only, not a change of the user anyone sees: not
		// audited, and Updated (SCIM's version) stays.
		u.DefaultGroups = defaults
		out.groupsOverage = prof.GroupsOverage
	}
	if !u.EmailVerified && in.verified && u.Email != "" && CanonEmail(u.Email) == CanonEmail(prof.Email) {
		// The IdP vouches for the address the user holds, whoever wrote
		// it (SCIM, import mode, a user stored before EmailVerified was
		// kept): link_by_email may link into the user from now on.
		u.EmailVerified = true
		out.changed = append(out.changed, "email_verified")
	}
	if len(out.changed) > 0 || out.linked {
		u.Updated = store.NextStamp(u.Updated, in.now)
	}
	u.LastLogin = in.now
	if err := tx.PutUser(u); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	out.user = u
	if len(out.changed) > 0 {
		ev := in.event(store.EventUserUpdated, u.ID)
		ev.Detail = map[string]string{"fields": strings.Join(out.changed, ",")}
		if err := tx.Audit(ev); err != nil {
			return fmt.Errorf("audit update: %w", err)
		}
	}
	return in.succeed(tx, u)
}

// changesEmail says whether a force update of u writes the sign-in's
// email (forceProfile): SCIM owns the address of a user it manages, and an
// empty claim never blanks one.
func (in *login) changesEmail(u *store.User) bool {
	return in.rules.Update == UpdateForce && u.Source != store.SourceSCIM && in.prof.Email != "" && in.prof.Email != u.Email
}

// lockHolder locks holder, from whom a force update of u would take the
// address (mayTakeEmail) and whom emailOwner read without a lock, together
// with u, in ID order (store.Tx.LockUsers; knownUser has most often
// taken both already), and reads holder again, locked. take is whether
// they still hold the address and may still give it up; owner is then
// that fresh record, else the address's holder as it is now (nil when
// none), only to be checked: the next sign-in takes it, if it may.
func (in *login) lockHolder(tx store.Tx, u, holder *store.User) (owner *store.User, take bool, err error) {
	if err := tx.LockUsers([]string{u.ID, holder.ID}); err != nil {
		return nil, false, fmt.Errorf("lock email owner: %w", err)
	}
	fresh, err := tx.User(holder.ID)
	switch {
	case err == nil && store.FoldName(fresh.Email) == store.FoldName(holder.Email) && in.mayTakeEmail(fresh):
		return fresh, true, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, false, fmt.Errorf("look up email owner: %w", err)
	}
	owner, err = emailOwner(tx, in.prof.Email, false)
	return owner, false, err
}

// forceProfile copies the names and email of the sign-in onto u (update
// force), unless SCIM owns u's profile: a directory that manages the user
// is the source of their names and address, and the login only records
// itself (its groups are another matter: update).
func (in *login) forceProfile(tx store.Tx, out *outcome, u *store.User) error {
	if u.Source == store.SourceSCIM {
		return nil
	}
	prof := in.prof
	// An empty incoming value means the IdP did not send it this
	// time; it never blanks what is stored.
	if prof.FirstName != "" && prof.FirstName != u.FirstName {
		u.FirstName = prof.FirstName
		out.changed = append(out.changed, "first_name")
	}
	if prof.LastName != "" && prof.LastName != u.LastName {
		u.LastName = prof.LastName
		out.changed = append(out.changed, "last_name")
	}
	if in.changesEmail(u) {
		// Read without a lock: most often the owner is only checked,
		// and a lock taken now would come after u's (see knownUser).
		owner, err := emailOwner(tx, prof.Email, false)
		if err != nil {
			return err
		}
		take := false
		if owner != nil && owner.ID != u.ID && in.mayTakeEmail(owner) {
			if owner, take, err = in.lockHolder(tx, u, owner); err != nil {
				return err
			}
		}
		if take {
			if err := in.releaseEmail(tx, out, owner); err != nil {
				return err
			}
			if err := in.auditRelease(tx, out, u.ID); err != nil {
				return err
			}
			owner = nil
		}
		if owner != nil && owner.ID != u.ID {
			// Keep the stored email rather than lock the user out
			// over someone else's record; audit so an admin can sort
			// it out.
			out.emailKept = true
			out.conflictOwner = owner.ID
			ev := in.event(store.EventJITConflict, u.ID)
			ev.Reason = ReasonEmailConflict
			ev.Detail = map[string]string{"field": "email", "owner": owner.ID}
			if err := tx.Audit(ev); err != nil {
				return fmt.Errorf("audit conflict: %w", err)
			}
		} else {
			old := u.Email
			u.Email = prof.Email
			// Another spelling of the same mailbox keeps its vouching.
			u.EmailVerified = in.verified || u.EmailVerified && CanonEmail(old) == CanonEmail(u.Email)
			out.changed = append(out.changed, "email")
			if err := in.followEmail(tx, out, u, old); err != nil {
				return err
			}
		}
	}
	return nil
}

func (in *login) succeed(tx store.Tx, u *store.User) error {
	if err := tx.Audit(in.event(store.EventLoginSucceeded, u.ID)); err != nil {
		return fmt.Errorf("audit login: %w", err)
	}
	return nil
}

func sameSet(sorted, other []string) bool {
	return slices.Equal(sorted, store.NormalGroupNames(other))
}

func logOutcome(log *zap.Logger, in *login, out *outcome) {
	base := []zap.Field{zap.String("idp", in.idp), zap.String("subject", in.prof.UniqueUserID)}
	with := func(extra ...zap.Field) []zap.Field { return append(slices.Clip(base), extra...) }
	if out.created {
		log.Info("sso user created",
			with(zap.String("user_id", out.user.ID), zap.Bool("pending", out.user.Pending),
				zap.Int("groups", len(out.user.Groups)), zap.Bool("groups_overage", out.groupsOverage))...)
	}
	if out.linked && out.denial == nil {
		msg := "sso identity linked by verified email"
		if out.linkReason == "external_id" {
			msg = "sso identity linked to SCIM user by externalId"
		}
		log.Info(msg, with(zap.String("user_id", out.user.ID))...)
	}
	if len(out.changed) > 0 {
		log.Info("sso user updated", with(zap.String("user_id", out.user.ID), zap.Strings("fields", out.changed))...)
	}
	if out.emailReleasedBy != "" {
		log.Info("sso user email taken from another user: the IdP gives the address to this user now",
			with(zap.String("user_id", out.user.ID), zap.String("released_by", out.emailReleasedBy))...)
	}
	if out.emailKept {
		log.Warn("sso user email not updated: address belongs to another user",
			with(zap.String("user_id", out.user.ID), zap.String("owner_id", out.conflictOwner))...)
	}
	if d := out.denial; d != nil {
		if d.Reason == ReasonEmailConflict {
			log.Warn("sso login denied: email belongs to another user",
				with(zap.String("reason", d.Reason), zap.String("owner_id", out.conflictOwner),
					zap.Bool("link_by_email", in.rules.LinkByEmail), zap.Bool("email_verified", in.verified),
					zap.String("not_linked", out.notLinked))...)
			return
		}
		if d.Reason == ReasonExternalIDConflict {
			log.Warn("sso login denied: scim externalId belongs to a user who signs in under another subject",
				with(zap.String("reason", d.Reason), zap.String("owner_id", out.conflictOwner),
					zap.String("not_linked", out.notLinked))...)
			return
		}
		fields := with(zap.String("reason", d.Reason))
		if d.UserID != "" {
			fields = append(fields, zap.String("user_id", d.UserID))
		}
		if len(d.Missing) > 0 {
			fields = append(fields, zap.Strings("missing", d.Missing))
		}
		if d.Attribute != "" {
			fields = append(fields, zap.String("attribute", d.Attribute), zap.String("problem", d.Problem))
		}
		if d.Domain != "" {
			fields = append(fields, zap.String("domain", d.Domain))
		}
		log.Warn("sso login denied", fields...)
		return
	}
	if out.groupsOverage {
		log.Warn("sso groups overage: the IdP sent a pointer instead of the groups, so the user's groups were not updated. In Entra, emit only the groups assigned to the application, or provision groups with SCIM",
			with(zap.String("user_id", out.user.ID))...)
	}
}
