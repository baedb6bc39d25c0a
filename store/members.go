package store

import (
	"slices"
	"time"
)

// What a change to a SCIM group does to its members' Groups, the same in
// every backend: the backends only find the users and write them back.

// MembersTouched lists the users whose Groups a change to one group
// touches, when its member list goes from before to after (both as
// NormalMembers leaves them): those who joined or left, and on a rename
// every member.
func MembersTouched(before, after []string, renamed bool) []string {
	var touched []string
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || i < len(before) && before[i] < after[j]:
			touched = append(touched, before[i]) // left
			i++
		case i == len(before) || after[j] < before[i]:
			touched = append(touched, after[j]) // joined
			j++
		default:
			if renamed {
				touched = append(touched, after[j])
			}
			i++
			j++
		}
	}
	return touched
}

// RegroupSCIM updates u.Groups after the names of the SCIM groups u is a
// member of went from was to now: names u no longer has through a SCIM
// group are dropped, new ones added, and everything else (login groups,
// defaults) kept. A name that both the token of a login and a SCIM group
// granted goes with the SCIM group until the next login grants it again;
// one the login's defaults granted (DefaultGroups) stays: the defaults
// are not the directory's, and the next login decides them again whatever
// the IdP sends. Updated moves
// to when (NextStamp). It reports whether Groups changed, and so whether u
// is to be written.
func (u *User) RegroupSCIM(was, now map[string]bool, when time.Time) bool {
	groups := slices.DeleteFunc(slices.Clone(u.Groups), func(g string) bool {
		return was[g] && !now[g] && !slices.Contains(u.DefaultGroups, g)
	})
	for g := range now {
		groups = append(groups, g)
	}
	groups = NormalGroupNames(groups)
	if slices.Equal(groups, u.Groups) {
		return false
	}
	u.Groups = groups
	u.Updated = NextStamp(u.Updated, when)
	return true
}
