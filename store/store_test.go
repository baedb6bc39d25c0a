package store

import (
	"slices"
	"testing"
)

func TestNormalLinks(t *testing.T) {
	okta := Link{IdP: "okta", Subject: "00u1"}
	entra := Link{IdP: "entra", Subject: "oid-1"}
	for _, c := range []struct {
		name    string
		in      []Link
		want    []Link
		wantErr bool
	}{
		{"none", nil, nil, false},
		{"order kept", []Link{okta, entra}, []Link{okta, entra}, false},
		{"exact duplicates dropped", []Link{okta, entra, okta}, []Link{okta, entra}, false},
		{"same IdP, other subject kept", []Link{okta, {IdP: "okta", Subject: "00u2"}}, []Link{okta, {IdP: "okta", Subject: "00u2"}}, false},
		{"empty subject", []Link{okta, {IdP: "okta"}}, nil, true},
		{"empty IdP", []Link{{Subject: "00u1"}}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := NormalLinks(c.in)
			if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
				t.Errorf("NormalLinks(%v) = %v, %v; want %v (error: %v)", c.in, got, err, c.want, c.wantErr)
			}
		})
	}
}
