package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// maxSteps bounds the work of walking a manifest, so that aliases that refer to
// aliases cannot make a small file take a long time to check.
const maxSteps = 1 << 20

// decoder walks a yaml.Node tree by the manifest's schema and collects every problem.
type decoder struct {
	file      string
	dir       string
	lookup    func(string) (string, bool)
	problems  []Problem
	steps     int
	exhausted bool
	scalars   map[*yaml.Node]scalar
}

// scalar is a scalar's value after ${...} expansion.
type scalar struct {
	value string
	// substituted is true when the value came, at least in part, from the environment;
	// its YAML tag then says nothing about its type.
	substituted bool
	// ok is false when expansion failed; the problem is already reported.
	ok bool
}

func (d *decoder) pos(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.problems = append(d.problems, Problem{Pos: d.pos(n), Message: fmt.Sprintf(format, args...)})
}

// step charges one unit of work and reports whether the budget allows more.
func (d *decoder) step() bool {
	if d.exhausted {
		return false
	}
	d.steps++
	if d.steps > maxSteps {
		d.exhausted = true
		d.problems = append(d.problems, Problem{
			Pos:     Position{File: d.file, Line: 1, Column: 1},
			Message: "manifest too complex: its aliases expand to too many values",
		})
		return false
	}
	return true
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError reports an error of the YAML parser. The parser gives a line but no column.
func (d *decoder) syntaxError(err error) {
	msg := err.Error()
	pos := Position{File: d.file, Line: 1, Column: 1}
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			pos.Line = n
		}
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.problems = append(d.problems, Problem{Pos: pos, Message: "YAML syntax error: " + msg})
}

// parse reads data as a single YAML document and returns its root node, or nil after
// reporting why there is none.
func (d *decoder) parse(data []byte) (root *yaml.Node) {
	defer func() {
		if r := recover(); r != nil {
			d.problems = append(d.problems, Problem{
				Pos:     Position{File: d.file, Line: 1, Column: 1},
				Message: fmt.Sprintf("YAML syntax error: %v", r),
			})
			root = nil
		}
	}()
	data, protected := protectRefs(data)
	if protected {
		defer func() {
			if root != nil {
				restoreRefs(root)
			}
		}()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.problems = append(d.problems, Problem{
				Pos:     Position{File: d.file, Line: 1, Column: 1},
				Message: "manifest is empty (want at least version: 1 and functions:)",
			})
			return nil
		}
		d.syntaxError(err)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(err)
	default:
		d.errorf(&next, "only one YAML document is allowed in a manifest, found a second one")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		d.errorf(&doc, "manifest is empty (want at least version: 1 and functions:)")
		return nil
	}
	return doc.Content[0]
}

// flowChars end a plain scalar inside a flow collection ({...} or [...]). So that
// `{secret: ${SECRET}}` means what it says, those characters inside ${...} are swapped
// for private-use runes before parsing and swapped back in every scalar afterwards.
// A rune stands for each byte, so the parser's columns (counted in runes) are unchanged.
const (
	flowChars    = "{}[],"
	protectFirst = '\uE000'
)

// protectRefs swaps the flow indicators inside each ${...} for private-use runes. It
// leaves data alone when data already holds such runes or has no reference.
func protectRefs(data []byte) ([]byte, bool) {
	if !bytes.Contains(data, []byte("${")) {
		return data, false
	}
	for i := range len(flowChars) {
		if bytes.ContainsRune(data, protectFirst+rune(i)) {
			return data, false
		}
	}
	out := make([]byte, 0, len(data)+64)
	for i := 0; i < len(data); {
		if data[i] != '$' || i+1 >= len(data) || data[i+1] != '{' {
			out = append(out, data[i])
			i++
			continue
		}
		end := -1
		depth := 0
	scan:
		for j := i + 1; j < len(data); j++ {
			switch data[j] {
			case '\n', '\r':
				break scan
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					end = j
					break scan
				}
			}
		}
		if end < 0 {
			out = append(out, data[i])
			i++
			continue
		}
		for _, c := range data[i : end+1] {
			if k := strings.IndexByte(flowChars, c); k >= 0 {
				out = utf8.AppendRune(out, protectFirst+rune(k))
			} else {
				out = append(out, c)
			}
		}
		i = end + 1
	}
	return out, true
}

// restoreRefs undoes protectRefs in every scalar of the tree under n.
func restoreRefs(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.ContainsFunc(n.Value, isProtected) {
		n.Value = strings.Map(func(r rune) rune {
			if isProtected(r) {
				return rune(flowChars[r-protectFirst])
			}
			return r
		}, n.Value)
	}
	for _, c := range n.Content {
		restoreRefs(c)
	}
}

func isProtected(r rune) bool {
	return r >= protectFirst && r < protectFirst+rune(len(flowChars))
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	orig := n
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: orig.Line, Column: orig.Column}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// entry is one key of a mapping, with its value resolved.
type entry struct {
	key     string
	keyNode *yaml.Node
	value   *yaml.Node
}

// mapping is a decoded YAML mapping: keys in file order, merge keys applied.
type mapping struct {
	node    *yaml.Node
	entries []entry
	index   map[string]int
}

// get returns the entry for key; ok is false when the key is absent or its value is
// null, so that "key:" with nothing after it means the same as leaving it out.
func (m *mapping) get(key string) (entry, bool) {
	i, ok := m.index[key]
	if !ok {
		return entry{}, false
	}
	e := m.entries[i]
	return e, !isNull(e.value)
}

// has reports whether key is present, even with a null value.
func (m *mapping) has(key string) bool {
	_, ok := m.index[key]
	return ok
}

// mapping decodes n as a mapping. name is the key that holds it, for type errors; where
// describes it in messages ("function \"hello\""); known lists the allowed keys, or nil
// to allow any. A null value is an empty mapping.
func (d *decoder) mapping(n *yaml.Node, name, where string, known []string) (*mapping, bool) {
	n = resolve(n)
	m := &mapping{node: n, index: map[string]int{}}
	if isNull(n) {
		return m, true
	}
	if n.Kind != yaml.MappingNode {
		d.typeError(n, name, "a mapping", false)
		return m, false
	}
	m.entries = d.entries(n, where, map[*yaml.Node]bool{})
	for i, e := range m.entries {
		m.index[e.key] = i
	}
	if known != nil {
		for _, e := range m.entries {
			if !contains(known, e.key) {
				d.unknownKey(e.keyNode, e.key, where, known)
			}
		}
	}
	return m, true
}

// unknownKey reports a key that the schema does not know, suggesting a close one.
func (d *decoder) unknownKey(n *yaml.Node, key, where string, known []string) {
	if s := suggest(key, known); s != "" {
		d.errorf(n, "unknown key %q in %s; did you mean %q?", key, where, s)
		return
	}
	d.errorf(n, "unknown key %q in %s (want one of %s)", key, where, strings.Join(known, ", "))
}

// entries lists the keys of mapping n: its own keys first, then those of merged
// mappings (<<) that it does not set itself. Duplicate keys are reported.
func (d *decoder) entries(n *yaml.Node, where string, visiting map[*yaml.Node]bool) []entry {
	visiting[n] = true
	defer delete(visiting, n)
	var out []entry
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.step() {
			return out
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		rk := resolve(k)
		if rk.Kind != yaml.ScalarNode {
			d.errorf(k, "keys must be plain strings, got %s as a key in %s", kindName(rk), where)
			continue
		}
		if first, dup := seen[rk.Value]; dup {
			d.errorf(k, "duplicate key %q in %s (first at line %d, column %d)", rk.Value, where, first.Line, first.Column)
			continue
		}
		seen[rk.Value] = k
		out = append(out, entry{key: rk.Value, keyNode: k, value: resolve(v)})
	}
	for _, mv := range merges {
		src := resolve(mv)
		var sources []*yaml.Node
		switch src.Kind {
		case yaml.MappingNode:
			sources = append(sources, src)
		case yaml.SequenceNode:
			for _, item := range src.Content {
				r := resolve(item)
				if r.Kind != yaml.MappingNode {
					d.errorf(item, "merge key <<: want a mapping or a list of mappings, got %s in the list", kindName(r))
					continue
				}
				sources = append(sources, r)
			}
		default:
			d.errorf(mv, "merge key <<: want a mapping or a list of mappings, got %s", kindName(src))
		}
		for _, s := range sources {
			if visiting[s] {
				d.errorf(mv, "merge key <<: the merged mapping contains this mapping itself")
				continue
			}
			for _, e := range d.entries(s, where, visiting) {
				if _, dup := seen[e.key]; dup {
					continue
				}
				seen[e.key] = e.keyNode
				out = append(out, e)
			}
		}
	}
	return out
}

// sequence decodes n as a list and returns its items, resolved. A null value is an
// empty list.
func (d *decoder) sequence(n *yaml.Node, name string) ([]*yaml.Node, bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, name, "a list", false)
		return nil, false
	}
	items := make([]*yaml.Node, 0, len(n.Content))
	for _, it := range n.Content {
		if !d.step() {
			return items, false
		}
		items = append(items, resolve(it))
	}
	return items, true
}

// expand returns the value of scalar n after ${...} expansion, reporting expansion
// problems once per node.
func (d *decoder) expand(n *yaml.Node) scalar {
	if s, ok := d.scalars[n]; ok {
		return s
	}
	s := scalar{value: n.Value, ok: true}
	if strings.Contains(n.Value, "$") {
		x, err := expand(n.Value, d.lookup)
		switch {
		case err != nil:
			d.errorf(n, "%v", err)
			s.ok = false
		case len(x.missing) > 0:
			for _, name := range x.missing {
				d.errorf(n, "environment variable %s is not set", name)
			}
			s.ok = false
		}
		s.value, s.substituted = x.value, x.substituted
	}
	d.scalars[n] = s
	return s
}

// typeError reports that the value n of key name is not of the wanted type. The value
// is quoted only when it is not a secret.
func (d *decoder) typeError(n *yaml.Node, name, want string, secret bool) {
	d.errorf(n, "%s: want %s, got %s", name, want, d.describe(n, secret))
}

// describe names what n is, for messages: `string "many"`, `a list`, `null`...
func (d *decoder) describe(n *yaml.Node, secret bool) string {
	if n.Kind != yaml.ScalarNode {
		return kindName(n)
	}
	if secret {
		return "a value that is not a string"
	}
	s := d.expand(n)
	if s.substituted {
		return fmt.Sprintf("string %q", clip(s.value))
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("string %q", clip(n.Value))
	case "!!int":
		return "integer " + clip(n.Value)
	case "!!float":
		return "number " + clip(n.Value)
	case "!!bool":
		return "boolean " + clip(n.Value)
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("a value tagged %q", clip(n.ShortTag()))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	}
	return "nothing"
}

func clip(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// str reads a string. Any scalar is accepted: `exec: [sleep, 10]` means "10".
func (d *decoder) str(n *yaml.Node, name string) (string, bool) {
	return d.text(n, name, false)
}

// secret reads a secret: like str, but its value never appears in a message.
func (d *decoder) secret(n *yaml.Node, name string) (Secret, bool) {
	s, ok := d.text(n, name, true)
	return Secret(s), ok
}

func (d *decoder) text(n *yaml.Node, name string, secret bool) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.typeError(n, name, "a string", secret)
		return "", false
	}
	s := d.expand(n)
	return s.value, s.ok
}

// integer reads an integer; a value from the environment must be a decimal integer.
func (d *decoder) integer(n *yaml.Node, name string) (int64, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		s := d.expand(n)
		if !s.ok {
			return 0, false
		}
		text := s.value
		base := 10
		if !s.substituted {
			if n.ShortTag() != "!!int" {
				d.typeError(n, name, "an integer", false)
				return 0, false
			}
			text = strings.ReplaceAll(text, "_", "")
			base = 0
		}
		v, err := strconv.ParseInt(strings.TrimSpace(text), base, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				d.errorf(n, "%s: integer %s is out of range", name, clip(text))
				return 0, false
			}
			d.typeError(n, name, "an integer", false)
			return 0, false
		}
		return v, true
	}
	d.typeError(n, name, "an integer", false)
	return 0, false
}

// number reads a number, integer or not.
func (d *decoder) number(n *yaml.Node, name string) (float64, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		s := d.expand(n)
		if !s.ok {
			return 0, false
		}
		tag := n.ShortTag()
		if s.substituted || tag == "!!int" || tag == "!!float" {
			text := strings.TrimSpace(s.value)
			if !s.substituted {
				text = strings.ReplaceAll(text, "_", "")
			}
			v, err := strconv.ParseFloat(text, 64)
			if err != nil && tag == "!!int" && !s.substituted {
				var i int64
				i, err = strconv.ParseInt(text, 0, 64)
				v = float64(i)
			}
			if err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
				return v, true
			}
		}
	}
	d.typeError(n, name, "a number", false)
	return 0, false
}

// boolean reads true or false.
func (d *decoder) boolean(n *yaml.Node, name string) (bool, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		s := d.expand(n)
		if !s.ok {
			return false, false
		}
		if s.substituted || n.ShortTag() == "!!bool" {
			switch strings.ToLower(strings.TrimSpace(s.value)) {
			case "true":
				return true, true
			case "false":
				return false, true
			}
		}
	}
	d.typeError(n, name, "a boolean (true or false)", false)
	return false, false
}

// duration reads a duration such as 30s, 1m30s or 7d.
func (d *decoder) duration(n *yaml.Node, name string) (time.Duration, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.typeError(n, name, "a duration such as 30s, 1m30s or 7d", false)
		return 0, false
	}
	s := d.expand(n)
	if !s.ok {
		return 0, false
	}
	if !s.substituted && n.ShortTag() != "!!str" && n.ShortTag() != "!!int" {
		d.typeError(n, name, "a duration such as 30s, 1m30s or 7d", false)
		return 0, false
	}
	v, err := ParseDuration(s.value)
	if err != nil {
		d.errorf(n, "%s: %v", name, err)
		return 0, false
	}
	return v, true
}

// enum reads a string that must be one of allowed.
func (d *decoder) enum(n *yaml.Node, name string, allowed []string) (string, bool) {
	s, ok := d.str(n, name)
	if !ok {
		return "", false
	}
	if contains(allowed, s) {
		return s, true
	}
	msg := fmt.Sprintf("%s: invalid value %q (want %s)", name, clip(s), orList(allowed))
	if sg := suggest(s, allowed); sg != "" {
		msg += fmt.Sprintf("; did you mean %q?", sg)
	}
	d.errorf(resolve(n), "%s", msg)
	return "", false
}

// ParseDuration parses a Go duration (300ms, 30s, 1m30s, 2h) that may begin with a
// number of whole days (7d, 1d12h). Negative durations are rejected.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty duration (want e.g. 30s, 1m30s or 7d)")
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", clip(s))
	}
	var days time.Duration
	if i := strings.IndexByte(t, 'd'); i > 0 && allDigits(t[:i]) {
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, fmt.Errorf("invalid duration %q: too long", clip(s))
		}
		days = time.Duration(n) * 24 * time.Hour
		t = t[i+1:]
		if t == "" {
			return days, nil
		}
		if strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+") {
			return 0, fmt.Errorf("invalid duration %q (want e.g. 30s, 1m30s or 7d)", clip(s))
		}
	}
	v, err := time.ParseDuration(t)
	if err != nil {
		if allDigits(t) {
			if t == "0" {
				return days, nil
			}
			return 0, fmt.Errorf("invalid duration %q: missing unit (want e.g. 30s, 1m30s or 7d)", clip(s))
		}
		return 0, fmt.Errorf("invalid duration %q (want e.g. 30s, 1m30s or 7d)", clip(s))
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", clip(s))
	}
	if days > math.MaxInt64-v {
		return 0, fmt.Errorf("invalid duration %q: too long", clip(s))
	}
	return days + v, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// orList formats ["a","b","c"] as "a, b or c".
func orList(list []string) string {
	switch len(list) {
	case 0:
		return ""
	case 1:
		return list[0]
	}
	return strings.Join(list[:len(list)-1], ", ") + " or " + list[len(list)-1]
}

// suggest returns the candidate closest to s when it is close enough to be a typo.
func suggest(s string, candidates []string) string {
	const maxLen, maxCandidates = 64, 1000
	if len(s) > maxLen || s == "" || len(candidates) > maxCandidates {
		return ""
	}
	ls := strings.ToLower(s)
	limit := 1
	if len(s) >= 5 {
		limit = 2
	}
	if len(s) >= 10 {
		limit = 3
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if len(c) > maxLen || c == s || len(c) > len(s)+limit || len(c) < len(s)-limit {
			continue
		}
		if dist := editDistance(ls, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent bytes each cost one.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
