package mapping_test

import (
	"fmt"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/mapping"
)

func ExampleMapper_Map() {
	// idp entra saml { preset entra; map firstName http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname }
	m, err := mapping.New("entra", idp.ProtocolSAML, map[string][]string{
		"firstName": {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"},
	})
	if err != nil {
		panic(err)
	}
	p, err := m.Map(&idp.Assertion{
		IdP:      "entra",
		Protocol: idp.ProtocolSAML,
		Attributes: map[string][]string{
			"userUniqueId": {"5f1b3c1e-8e2a-4a5b-9d1c-0a6f3e2b7c11"},
			"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": {"Alice"},
			"lastName": {"Martin"},
			"email":    {"alice@contoso.com"},
		},
	})
	fmt.Printf("%s %s %s %s %v\n", p.UniqueUserID, p.FirstName, p.LastName, p.Email, err)

	_, err = m.Map(&idp.Assertion{Protocol: idp.ProtocolSAML, Attributes: map[string][]string{"email": {"alice@contoso.com"}}})
	fmt.Println(err)
	// Output:
	// 5f1b3c1e-8e2a-4a5b-9d1c-0a6f3e2b7c11 Alice Martin alice@contoso.com <nil>
	// missing uniqueUserId: expected one of [userUniqueId uniqueUserId http://schemas.microsoft.com/identity/claims/objectidentifier]; missing firstName: expected one of [http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname]; missing lastName: expected one of [lastName http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname], received [email]
}
