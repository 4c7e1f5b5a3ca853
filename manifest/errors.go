package manifest

import (
	"fmt"
	"sort"
	"strings"
)

// String formats the position as file:line:col, or line:col when the file is unnamed.
func (p Position) String() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d", p.Line, p.Column)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Problem is one mistake found in a manifest, at the place it was found.
type Problem struct {
	Pos     Position
	Message string
}

// String formats the problem as file:line:col: message.
func (p Problem) String() string {
	return p.Pos.String() + ": " + p.Message
}

// Errors holds every problem found in a manifest, in the order of the file.
// Parse and Load return it (as an error) whenever the manifest is not valid.
type Errors struct {
	Problems []Problem
}

// Error prints one problem per line as file:line:col: message.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// newErrors sorts problems by position, drops exact repeats (a value reached through
// several aliases is checked once per use) and wraps them in an *Errors.
func newErrors(problems []Problem) *Errors {
	sort.SliceStable(problems, func(i, j int) bool {
		a, b := problems[i].Pos, problems[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	out := problems[:0:0]
	seen := make(map[Problem]bool, len(problems))
	for _, p := range problems {
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return &Errors{Problems: out}
}
