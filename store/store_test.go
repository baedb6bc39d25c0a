package store

import (
	"slices"
	"testing"
	"time"
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

func TestFillTimes(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	for _, c := range []struct {
		name                     string
		created, updated         time.Time
		wantCreated, wantUpdated time.Time
	}{
		{"both zero", time.Time{}, time.Time{}, now, now},
		{"created kept, updated follows it", earlier, time.Time{}, earlier, earlier},
		{"both kept", earlier, now.Add(-time.Minute), earlier, now.Add(-time.Minute)},
		{"updated kept, created filled", time.Time{}, earlier, now, earlier},
	} {
		t.Run(c.name, func(t *testing.T) {
			created, updated := c.created, c.updated
			FillTimes(&created, &updated, now)
			if !created.Equal(c.wantCreated) || !updated.Equal(c.wantUpdated) {
				t.Errorf("FillTimes = %v, %v; want %v, %v", created, updated, c.wantCreated, c.wantUpdated)
			}
		})
	}
}
