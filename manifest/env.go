package manifest

import (
	"errors"
	"fmt"
	"strings"
)

// maxExpandDepth bounds the nesting of defaults such as ${A:-${B:-${C}}}.
const maxExpandDepth = 8

// expansion is the result of expanding one scalar.
type expansion struct {
	value string
	// substituted is true when at least one ${...} reference was replaced.
	substituted bool
	// missing lists the variables that were unset and had no default.
	missing []string
}

// expand replaces ${VAR} and ${VAR:-default} in s with values from lookup; $$ is a
// literal $, and a $ that starts neither is kept as is. A default is itself expanded,
// and is used when the variable is unset or empty. Error messages name variables but
// never quote s or a value: s may be a secret.
func expand(s string, lookup func(string) (string, bool)) (expansion, error) {
	var x expansion
	v, err := expandDepth(s, lookup, &x, 0)
	x.value = v
	return x, err
}

func expandDepth(s string, lookup func(string) (string, bool), x *expansion, depth int) (string, error) {
	if depth > maxExpandDepth {
		return "", errors.New("${...} defaults are nested too deeply")
	}
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte('$')
			i++
			continue
		}
		start := i + 2
		end := start
		for end < len(s) && isNameByte(s[end], end == start) {
			end++
		}
		name := s[start:end]
		if name == "" {
			if end < len(s) && s[end] == '}' {
				return "", errors.New("empty variable reference ${} (write $$ for a literal $)")
			}
			return "", errors.New("invalid variable reference: ${ must be followed by a name of letters, digits and _ (write $$ for a literal $)")
		}
		if end >= len(s) {
			return "", fmt.Errorf("unterminated variable reference ${%s: missing }", name)
		}
		switch {
		case s[end] == '}':
			val, ok := lookup(name)
			if !ok {
				x.missing = append(x.missing, name)
			}
			b.WriteString(val)
			x.substituted = true
			i = end + 1
		case strings.HasPrefix(s[end:], ":-"):
			close := matchBrace(s, end+2)
			if close < 0 {
				return "", fmt.Errorf("unterminated variable reference ${%s:-...: missing }", name)
			}
			if val, ok := lookup(name); ok && val != "" {
				b.WriteString(val)
			} else {
				def, err := expandDepth(s[end+2:close], lookup, x, depth+1)
				if err != nil {
					return "", err
				}
				b.WriteString(def)
			}
			x.substituted = true
			i = close + 1
		default:
			return "", fmt.Errorf("invalid variable reference: after ${%s want } or :-default, as in ${%s} or ${%s:-default}", name, name, name)
		}
	}
	return b.String(), nil
}

// matchBrace returns the index of the } that closes a reference whose body starts at
// from, skipping $$ and nested ${...}; -1 when there is none.
func matchBrace(s string, from int) int {
	depth := 1
	for i := from; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '$':
			i++
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			depth++
			i++
		case s[i] == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}
