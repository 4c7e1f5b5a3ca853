package fs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// kind is what a path holds, as far as the trigger is concerned.
type kind uint8

const (
	// none: no file the trigger would submit (missing, a directory, a device, a
	// symbolic link that leads out of the root or nowhere).
	none kind = iota
	// file: a regular file, or a symbolic link to one inside the root.
	file
	// unknown: the path could not be examined (permissions, I/O); look again later.
	unknown
)

// obs is one observation of a path.
type obs struct {
	kind  kind
	size  int64
	mtime int64 // Unix nanoseconds
}

// version is the receipt version of an observed file: "<size>:<mtime-ns>".
func (o obs) version() string {
	return strconv.FormatInt(o.size, 10) + ":" + strconv.FormatInt(o.mtime, 10)
}

// parseVersion reads a receipt version written by version.
func parseVersion(v string) (obs, bool) {
	a, b, ok := strings.Cut(v, ":")
	if !ok {
		return obs{}, false
	}
	size, err1 := strconv.ParseInt(a, 10, 64)
	mtime, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || size < 0 {
		return obs{}, false
	}
	return obs{kind: file, size: size, mtime: mtime}, true
}

func fileObs(fi fs.FileInfo) obs {
	return obs{kind: file, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// relOf turns a path under the root into its slash-separated relative path ("." for
// the root itself). Anything else, including a path that would climb out with "..",
// is refused.
func (t *Trigger) relOf(name string) (string, bool) {
	if name == t.root {
		return ".", true
	}
	prefix := t.root
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	r, ok := strings.CutPrefix(name, prefix)
	if !ok || r == "" || filepath.Clean(r) != r || !filepath.IsLocal(r) {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// abs is the absolute path of rel under the configured root.
func (t *Trigger) abs(rel string) string {
	if rel == "." {
		return t.root
	}
	return filepath.Join(t.root, filepath.FromSlash(rel))
}

// key is the receipt key of rel.
func (t *Trigger) key(rel string) string { return t.keyPrefix + rel }

// inScope reports whether a file at rel is one this trigger watches: in the root (or
// below it when recursive), with a base name the pattern matches.
func (t *Trigger) inScope(rel string) bool {
	if rel == "." || rel == "" || (!t.recursive && strings.Contains(rel, "/")) {
		return false
	}
	return t.matches(path.Base(rel))
}

// matches applies the pattern to a base name. As in a shell, a leading dot must be
// matched by a leading dot in the pattern.
func (t *Trigger) matches(base string) bool {
	if strings.HasPrefix(base, ".") && !strings.HasPrefix(t.pattern, ".") {
		return false
	}
	ok, _ := path.Match(t.pattern, base)
	return ok
}

// observe looks at rel now.
func (t *Trigger) observe(rel string) obs {
	p := t.abs(rel)
	fi, err := os.Lstat(p)
	if err != nil {
		if gone(err) {
			return obs{}
		}
		return obs{kind: unknown}
	}
	return t.observeInfo(p, fi)
}

// observeInfo classifies what Lstat found at p.
func (t *Trigger) observeInfo(p string, fi fs.FileInfo) obs {
	switch {
	case fi.Mode().IsRegular():
		return fileObs(fi)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			if gone(err) {
				return obs{}
			}
			return obs{kind: unknown}
		}
		if !t.inside(target) {
			return obs{}
		}
		st, err := os.Stat(target)
		if err != nil {
			if gone(err) {
				return obs{}
			}
			return obs{kind: unknown}
		}
		if !st.Mode().IsRegular() {
			return obs{}
		}
		return fileObs(st)
	}
	return obs{}
}

// contained reports whether rel, with every symbolic link on its way resolved, still
// lies inside the root: the last check before a file is submitted.
func (t *Trigger) contained(rel string) (bool, error) {
	target, err := filepath.EvalSymlinks(t.abs(rel))
	if err != nil {
		return false, err
	}
	return t.inside(target), nil
}

// inside reports whether a resolved path lies under the resolved root.
func (t *Trigger) inside(p string) bool {
	if t.realRoot == "" {
		return false
	}
	if p == t.realRoot {
		return true
	}
	prefix := t.realRoot
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	return strings.HasPrefix(p, prefix)
}

// under reports whether rel is dir or lies below it.
func under(rel, dir string) bool {
	return dir == "." || rel == dir || strings.HasPrefix(rel, dir+"/")
}

// gone reports whether err says that the path does not exist (or one of its parents
// is not a directory).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (t *Trigger) String() string { return fmt.Sprintf("fs trigger of %q on %s", t.fn, t.root) }
