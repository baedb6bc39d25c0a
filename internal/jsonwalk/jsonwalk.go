// Package jsonwalk reads into JSON decoded as any (maps, slices, values),
// for tests that check SCIM and admin API answers.
package jsonwalk

// At follows path through v: a string indexes an object, an int an array.
// It returns nil where the path leads nowhere: at(body, "emails", 0,
// "value").
func At(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		default:
			return nil
		}
	}
	return v
}
