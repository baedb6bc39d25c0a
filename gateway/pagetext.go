package gateway

import (
	"net/http"
	"net/url"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
)

// The default wording of every page, in one place. An operator's template
// may use it (Title, Message) or write its own from Name and Code.

// signInFailedPage links to a new sign-in at the same IdP: most failures
// a person meets are a sign-in that took too long, or an IdP page from a
// bookmark or the history, which one more try gets past.
//
// A refused re-authentication says so, and its link asks for one again:
// an ordinary sign-in would bring back the session the app just judged
// too old, and the person is still signed in with it.
//
// A token under a signing key the gateway may not fetch yet (the IdP's
// new key, met within the JWKS refresh limit) says to wait and try again:
// the same sign-in succeeds once the keys are fetched again, and "give
// your administrator the reference" would report a fault that is none.
func signInFailedPage(prefix, idpName, code string) Page {
	pg := Page{Name: PageSignInFailed, Status: http.StatusBadRequest, Title: "Sign-in failed", IdP: idpName, Code: code,
		Message: "The sign-in could not be completed. Start again from the application; if it keeps failing, give your administrator the reference below.",
		Links:   []PageLink{{Href: prefix + "login?idp=" + url.QueryEscape(idpName), Text: "Sign in again"}}}
	if code == idp.CodeReauthNotFresh {
		pg.Message = "This page asked you to confirm who you are, and the identity provider signed you in without asking. You are still signed in as before. Try again; if it keeps happening, give your administrator the reference below."
		pg.Links[0] = PageLink{Href: pg.Links[0].Href + "&reauth=1", Text: "Confirm who you are"}
	}
	if code == oidc.CodeSigningKeyPending {
		pg.Message = "The identity provider signed this sign-in with a new key, which this site has not fetched yet. Wait half a minute, then sign in again."
	}
	return pg
}

func deniedPage(idpName, code, message string, pending bool) Page {
	pg := Page{Name: PageDenied, Status: http.StatusForbidden, Title: "Access denied", IdP: idpName, Code: code, Message: message}
	if pending {
		pg.Title = "Waiting for approval"
	}
	return pg
}

// forbiddenPage names no rule, group or IdP. Its link signs out (through
// the confirmation page): signed in with the wrong account of the IdP, a
// person has no other way to sign in with another.
func forbiddenPage(prefix string) Page {
	return Page{Name: PageForbidden, Status: http.StatusForbidden, Title: "Access denied",
		Message: "You are signed in, but your account may not use this page. Ask your administrator for access if you need it, or sign out to use another account.",
		Links:   []PageLink{{Href: prefix + "logout", Text: "Sign out"}}}
}

func missingAttributesPageOf(idpName, code string) Page {
	return Page{Name: PageMissingAttributes, Status: http.StatusForbidden, Title: "Your account could not be set up", IdP: idpName, Code: code,
		Message: "The identity provider did not send everything this application needs to create your account. Your administrator can fix this in the identity provider's attribute (claim) mapping."}
}

func chooserPage(prefix string, idps []string, returnTo string) Page {
	pg := Page{Name: PageChooser, Status: http.StatusOK, Title: "Sign in", Message: "Choose how to sign in."}
	returnTo = url.QueryEscape(idp.LocalPath(returnTo))
	for _, name := range idps {
		pg.Links = append(pg.Links, PageLink{Href: prefix + "login?idp=" + url.QueryEscape(name) + "&return_to=" + returnTo, Text: name})
	}
	return pg
}

func unknownIdPPage(prefix string) Page {
	return Page{Name: PageUnknownIdP, Status: http.StatusNotFound, Title: "Unknown sign-in method",
		Message: "This site has no sign-in method by that name.",
		Links:   []PageLink{{Href: prefix + "login", Text: "Sign in"}}}
}

func logoutPage(prefix, returnTo string) Page {
	return Page{Name: PageLogout, Status: http.StatusOK, Title: "Sign out", Message: "Sign out of this application?",
		Action: prefix + "logout", Button: "Sign out", ReturnTo: returnTo}
}

// signInAgainPage: a form was submitted after the session had ended;
// nothing of it reached the application.
func signInAgainPage(login string) Page {
	return Page{Name: PageSignInAgain, Status: http.StatusUnauthorized, Title: "Sign in again",
		Message: "Your session has ended, so what you submitted was not sent. Sign in, then submit it again.",
		Links:   []PageLink{{Href: login, Text: "Sign in"}}}
}

// frameSignInPage: a frame (a dashboard's widget, a page embedded in
// another) loaded without a session. A sign-in cannot finish in a frame
// (IdPs refuse to be framed), so its link signs in in the whole window
// (Target) and comes back to login's return path, the page the frame is
// in; the page itself may be shown in any page's frame (Framed).
func frameSignInPage(login string) Page {
	return Page{Name: PageSignInAgain, Status: http.StatusUnauthorized, Title: "Sign in again", Framed: true,
		Message: "Your session has ended, so this part of the page cannot be shown. Sign in to see it again: the sign-in opens in the whole window.",
		Links:   []PageLink{{Href: login, Text: "Sign in", Target: "_top"}}}
}

// crossSiteFramePage: a frame in another site's page (a portal's) loaded
// without a session. The browser never sends the SameSite=Lax session
// cookie there, signed in or not, so neither "your session has ended" nor
// a sign-in would be true or help: the page says the app cannot be shown
// there, and its link opens the page the frame was for (open, a path of
// this site) in a window of its own, where the cookie is sent (or a
// sign-in can begin). It may be shown in any page's frame (Framed).
func crossSiteFramePage(open string) Page {
	return Page{Name: PageCrossSiteFrame, Status: http.StatusUnauthorized, Title: "Open this page in its own window", Framed: true,
		Message: "This application cannot be shown inside another site's page: your browser does not send it your sign-in there. Open it in a window of its own.",
		Links:   []PageLink{{Href: open, Text: "Open in a new window", Target: "_blank"}}}
}

// signedOutPage offers to sign in again, coming back where the sign-out
// was to return to.
func signedOutPage(prefix, returnTo string) Page {
	return Page{Name: PageSignedOut, Status: http.StatusOK, Title: "Signed out", Message: "You are signed out.",
		Links: []PageLink{{Href: prefix + "login?return_to=" + url.QueryEscape(idp.LocalPath(returnTo)), Text: "Sign in again"}}}
}

// logoutRefusedPage says what matters on a shared computer, that the
// person is still signed in, and leads to the sign-out page of this site,
// whose button does sign out.
func logoutRefusedPage(prefix string) Page {
	return Page{Name: PageLogoutRefused, Status: http.StatusForbidden, Title: "Sign-out refused", Code: "cross_site_logout",
		Message: "The sign-out request did not come from this site, so you are still signed in. To sign out, use this site's sign-out page.",
		Links:   []PageLink{{Href: prefix + "logout", Text: "Sign out"}}}
}

// logoutIncompletePage: the IdP's logout message was refused. sessionEnded
// says the local session had ended before (the refused message was the
// IdP's answer to a sign-out begun here). The page has no form or link, so
// the text must not offer one: it says what the person can still do.
func logoutIncompletePage(idpName, code string, sessionEnded bool) Page {
	pg := Page{Name: PageLogoutIncomplete, Status: http.StatusBadRequest, Title: "Sign-out incomplete", IdP: idpName, Code: code,
		Message: "The identity provider sent a sign-out message that could not be accepted, so it did not sign you out: you may still be signed in to this application. To sign out, use the application's own sign-out, or close the browser. If this keeps happening, give your administrator the reference below."}
	if sessionEnded {
		pg.SignedOut = true
		pg.Message = "You are signed out of this application. The identity provider's answer could not be verified, so you may still be signed in there: close the browser to end that session too. If this keeps happening, give your administrator the reference below."
	}
	return pg
}

func unavailablePage(idpName, code string) Page {
	return Page{Name: PageUnavailable, Status: http.StatusBadGateway, Title: "Sign-in is unavailable", IdP: idpName, Code: code,
		Message: "The identity provider could not be reached. Try again in a moment."}
}

// tokenRefreshFailedPage: the IdP could not renew the access token the
// route passes its upstream (Route.tokenRefreshFailed). The person is
// still signed in, here and at the IdP, so the page offers no sign-in.
func tokenRefreshFailedPage(idpName string) Page {
	return Page{Name: PageUnavailable, Status: http.StatusBadGateway, Title: "Temporarily unavailable", IdP: idpName, Code: CodeTokenRefreshFailed,
		Message: "This application could not renew your access with the identity provider right now. Try again in a moment."}
}

// misconfiguredPage does not ask the person to try again: nothing they do
// helps until an administrator corrects the settings (the log says which).
func misconfiguredPage(idpName string) Page {
	return Page{Name: PageMisconfigured, Status: http.StatusInternalServerError, Title: "Sign-in is not set up correctly", IdP: idpName,
		Code:    idp.CodeMisconfigured,
		Message: "The identity provider's settings and this site's do not match, so nobody can sign in here until an administrator corrects them. Trying again will not help: give your administrator the reference below."}
}

func baseURLRequiredPage() Page {
	return Page{Name: PageBaseURLRequired, Status: http.StatusInternalServerError, Title: "Sign-in is not configured for this address",
		Message: "This site does not know its own address, so it cannot send you to sign in. Ask your administrator to set the site's host name or base_url.",
		Code:    codeBaseURLRequired}
}

// codeBaseURLRequired is the reference code of Unvouched's page.
const codeBaseURLRequired = "base_url_required"

// signInNotSavedPage: the IdP vouched for the person, but the store could
// not record the sign-in (Route.signInNotSaved).
func signInNotSavedPage(idpName string) Page {
	return Page{Name: PageStoreUnavailable, Status: http.StatusServiceUnavailable, Title: "Sign-in is unavailable", IdP: idpName, Code: CodeStoreUnavailable,
		Message: "Your sign-in could not be saved. Nothing was changed. Try again in a few minutes; if it keeps failing, give your administrator the reference below."}
}

// CodeStoreOutcomeUnknown is the reference code of a sign-in whose commit
// the store sent but could not confirm (store.ErrOutcomeUnknown).
const CodeStoreOutcomeUnknown = "store_outcome_unknown"

// signInUnconfirmedPage: the store could not say whether the sign-in was
// saved (Route.signInNotSaved). Either way this browser got no session, so
// trying again is right; "Nothing was changed" would be false if the
// commit took (the user, the session and the audit event exist).
func signInUnconfirmedPage(idpName string) Page {
	return Page{Name: PageStoreUnavailable, Status: http.StatusServiceUnavailable, Title: "Sign-in is unavailable", IdP: idpName, Code: CodeStoreOutcomeUnknown,
		Message: "Your sign-in may or may not have been saved, and this browser is not signed in. Try again; if it keeps failing, give your administrator the reference below."}
}

// storeUnavailablePage: a session or a sign-out the store failed
// (Route.StoreUnavailable).
func storeUnavailablePage(message string) Page {
	return Page{Name: PageStoreUnavailable, Status: http.StatusServiceUnavailable, Title: "Temporarily unavailable", Code: CodeStoreUnavailable, Message: message,
		SignedOut: message == msgSignOutUnrecorded}
}
