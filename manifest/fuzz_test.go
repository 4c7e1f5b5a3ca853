package manifest

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that any input yields a valid manifest or a list of well-formed
// problems, and never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(designExample))
	for _, c := range badCases {
		f.Add([]byte(c.src))
	}
	f.Add([]byte("version: 1\nfunctions:\n  a: &a {handler: {builtin: echo}, <<: *a}\n"))
	f.Add([]byte("version: 1\nfunctions:\n  a: {handler: {exec: [\"${X:-${Y:-$$}}\"]}, then: b}\n  b: {handler: {http: \"https://h/${P}\"}}\n"))
	f.Add([]byte("version: 1\nhost: {listen: \"[::1]:0\", storage: \"postgres://u:p@h/db\", workers: 0x10}\nfunctions: {a: {handler: {builtin: x}}}\n"))

	vars := map[string]string{"X": "1", "Y": "${X}", "P": "8080", "FNHOST_API_KEY": "k", "N": "4"}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, "functions.yaml", env(vars))
		if (m == nil) == (err == nil) {
			t.Fatalf("Parse returned manifest %v and error %v: want exactly one", m != nil, err)
		}
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.Problems) == 0 {
				t.Fatalf("error %T %v: want a non-empty *Errors", err, err)
			}
			for _, p := range errs.Problems {
				if p.Pos.Line < 1 || p.Pos.Column < 1 || p.Pos.File != "functions.yaml" {
					t.Errorf("problem without a position: %#v", p)
				}
				if p.Message == "" || strings.Contains(p.Message, "\n") {
					t.Errorf("problem message %q: want one non-empty line", p.Message)
				}
			}
			return
		}
		if m.Version != 1 || m.Host.Workers < 1 || m.Host.Listen == "" || !strings.HasPrefix(m.Host.Storage, "sqlite:") && !strings.HasPrefix(m.Host.Storage, "postgres") {
			t.Fatalf("invalid host in a valid manifest: %+v", m.Host)
		}
		if len(m.Order) == 0 || len(m.Order) != len(m.Functions) {
			t.Fatalf("order %v for %d functions", m.Order, len(m.Functions))
		}
		for _, name := range m.Order {
			fn := m.Functions[name]
			if fn == nil || fn.Name != name || fn.Handler.Kind() == "" || fn.Timeout <= 0 || fn.Retry.MaxAttempts < 1 {
				t.Fatalf("invalid function %q: %+v", name, fn)
			}
			for _, next := range append(append([]string{}, fn.Then...), fn.OnFailure) {
				if _, ok := m.Functions[next]; next != "" && (!ok || next == name) {
					t.Fatalf("function %q continues with %q", name, next)
				}
			}
			for _, tr := range fn.Triggers {
				set := 0
				for _, p := range []bool{tr.HTTP != nil, tr.Cron != nil, tr.FS != nil, tr.S3 != nil, tr.Queue != nil} {
					if p {
						set++
					}
				}
				if set != 1 || tr.Kind == "" {
					t.Fatalf("trigger of %q: %+v", name, tr)
				}
			}
		}
	})
}
