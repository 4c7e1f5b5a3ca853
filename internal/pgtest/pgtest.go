// Package pgtest starts real PostgreSQL servers on 127.0.0.1 for the tests of the
// PostgreSQL store, and stops them when the test (or the test binary) ends. Launch
// starts one for programs that are no tests (the benchmark), which stop it with Close.
//
// A server is a fresh cluster in a temporary directory (initdb --auth=trust, user
// postgres), listening on a free port of 127.0.0.1 with its socket in that directory,
// with fsync on. Starting one costs a second or two, so a test binary shares one:
// Shared starts it on first use and Main stops it when the tests are done. Tests that
// need an empty database of their own take it from CreateDB, or a schema of their own
// in the shared database.
//
// The binaries (initdb and postgres) are looked up in $FNHOST_PG_BIN, then in the newest
// /usr/lib/postgresql/*/bin (Debian's packages), then in PATH. When they are missing the
// test is skipped, or fails when the environment has CI=true; Launch returns an error
// that wraps ErrNoBinary. As root, initdb and postgres run as the user postgres (initdb
// refuses to run as root), in a directory that user owns.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fnhost/fnhost/internal/testlog"
	"github.com/fnhost/fnhost/internal/testproc"
)

// readyTimeout bounds how long a server may take to accept connections.
const readyTimeout = time.Minute

// stopTimeout is how long a server has to exit after its shutdown signal before it gets
// SIGKILL.
const stopTimeout = 10 * time.Second

// User is the superuser of every server, which trusts local connections.
const User = "postgres"

// ErrNoBinary is what the error of Launch wraps when PostgreSQL is not installed.
var ErrNoBinary = errors.New("pgtest: PostgreSQL binaries not installed")

// Server is a running PostgreSQL server.
type Server struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Dir is the temporary directory of the server: its data directory (Dir/data), its
	// socket directory (Dir/sock) and its log. Close removes it.
	Dir string
	// Bin is the directory of the PostgreSQL binaries.
	Bin string

	data, sock string
	cred       *syscall.Credential // the user postgres, when running as root
	log        *testlog.Buffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited <-chan struct{}
}

// URL returns the URL of database db on the server, as user postgres without password.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", User, s.Port, db)
}

// Output returns the commands run for the server and everything initdb and the server
// wrote. Tests print it when they fail.
func (s *Server) Output() string { return s.log.String() }

// Exec runs sql (one or more statements, no parameters) in database db.
func (s *Server) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// CreateDB creates an empty database name and returns its URL; the test fails when it
// cannot.
func (s *Server) CreateDB(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.URL(name)
}

// Running reports whether the server process runs.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Stop shuts the server down (fast shutdown: open connections are closed, the data is
// kept) and waits for it, killing it when it takes longer than 10 s. Start starts it
// again. Stopping a stopped server does nothing.
func (s *Server) Stop() { s.stop(syscall.SIGINT) }

// Kill stops the server at once, as a crash would (an immediate shutdown: the next
// start recovers from the write-ahead log).
func (s *Server) Kill() { s.stop(syscall.SIGQUIT) }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// The postmaster's process group holds its backends too.
	testproc.Stop(cmd, exited, sig, stopTimeout)
}

// Start starts a stopped server again on the same port and data.
func (s *Server) Start() error {
	if s.Running() {
		return nil
	}
	return s.start()
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Kill()
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// Start starts a server of the test's own and stops it when the test ends; its output
// goes to the test log when the test fails. The test is skipped (or fails, with
// CI=true) when PostgreSQL is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch()
	if err != nil {
		testproc.SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgtest: server output:\n%s", s.Output())
		}
		s.Close()
	})
	return s
}

var shared struct {
	mu     sync.Mutex
	s      *Server
	err    error
	failed bool
}

// Shared returns the server shared by the tests of the test binary, starting it on
// first use. Main (or Run) stops it; a test binary that uses Shared must run its tests
// through one of them. The test is skipped (or fails, with CI=true) when PostgreSQL is
// not installed.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	if shared.s == nil && shared.err == nil {
		shared.s, shared.err = Launch()
	}
	s, err := shared.s, shared.err
	shared.mu.Unlock()
	if err != nil {
		testproc.SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			shared.mu.Lock()
			shared.failed = true
			shared.mu.Unlock()
		}
	})
	return s
}

// Main runs the tests of m through Run and exits with its code: call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests of m and then stops the shared server, printing its output when
// a test that used it failed, and returns m's exit code: for a TestMain that has more
// to do before it exits.
func Run(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	s, failed := shared.s, shared.failed
	shared.s, shared.err = nil, errors.New("pgtest: the shared server is stopped")
	shared.mu.Unlock()
	if s != nil {
		if failed || code != 0 {
			fmt.Fprintf(os.Stderr, "pgtest: shared server output:\n%s\n", s.Output())
		}
		s.Close()
	}
	return code
}

// Launch starts a server for a program that is no test. Close stops it and removes its
// directory.
func Launch() (*Server, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	s := &Server{Bin: bin, log: &testlog.Buffer{}}
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			return nil, err
		}
		s.cred = cred
	}
	dir, err := os.MkdirTemp("", "fnhost-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s.Dir, s.data, s.sock = dir, filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := s.setup(); err != nil {
		s.Close()
		return nil, fmt.Errorf("pgtest: %w\n%s", err, s.Output())
	}
	for range 3 {
		var port int
		if port, err = testproc.FreePort(); err != nil {
			break
		}
		s.Port = port
		before := len(s.Output())
		if err = s.start(); err == nil {
			return s, nil
		}
		out := s.Output()[before:]
		if !strings.Contains(out, "already in use") && !strings.Contains(out, "could not create") {
			break
		}
	}
	s.Close()
	return nil, fmt.Errorf("pgtest: start postgres: %w\n%s", err, s.Output())
}

// setup makes the directories and the cluster.
func (s *Server) setup() error {
	if err := os.Mkdir(s.sock, 0o700); err != nil {
		return err
	}
	if s.cred != nil {
		for _, d := range []string{s.Dir, s.sock} {
			if err := os.Chown(d, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return err
			}
		}
	}
	cmd := s.command("initdb", "-D", s.data, "--auth=trust", "-U", User, "-E", "UTF8", "--locale=C", "--no-sync")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// command is the PostgreSQL program name with args, run as the user postgres when the
// test runs as root, its output into the server's log.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.Bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	testproc.Own(cmd)
	fmt.Fprintf(s.log, "pgtest: %s %s\n", cmd.Path, strings.Join(args, " "))
	return cmd
}

// start runs the postmaster as a child process (so that it dies with the test binary)
// and waits until it accepts connections.
func (s *Server) start() error {
	cmd := s.command("postgres", "-D", s.data, "-p", strconv.Itoa(s.Port), "-k", s.sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "max_connections=300")
	exited, err := testproc.Start(cmd)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s.Exec(ctx, "postgres", "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.Kill()
			return fmt.Errorf("postgres exited before it was ready (%v)", cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("postgres did not accept connections within %v: %v", readyTimeout, err)
		}
	}
}

// postgresUser is the credential of the user postgres, which the server runs as when the
// test runs as root.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, PostgreSQL must run as the user postgres: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: user postgres has uid %q, gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// FindBin returns the directory that holds initdb and postgres: $FNHOST_PG_BIN, the
// newest /usr/lib/postgresql/*/bin, or the directory of initdb in PATH. The error wraps
// ErrNoBinary and says how to install PostgreSQL.
func FindBin() (string, error) {
	has := func(dir string) bool {
		return testproc.IsExecutable(filepath.Join(dir, "initdb")) && testproc.IsExecutable(filepath.Join(dir, "postgres"))
	}
	if dir := os.Getenv("FNHOST_PG_BIN"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("pgtest: $FNHOST_PG_BIN is %q, which has no initdb and postgres", dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	return "", testproc.Missing{Is: ErrNoBinary, Msg: "pgtest: no PostgreSQL server binaries (initdb, postgres) in $FNHOST_PG_BIN, /usr/lib/postgresql/*/bin or PATH; " +
		"install them with `apt-get install postgresql` (or `scripts/tools.sh postgres`), or set FNHOST_PG_BIN to their directory"}
}

// versionOf is the major version in /usr/lib/postgresql/VERSION/bin, 0 when it is none.
func versionOf(dir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
	if err != nil {
		return 0
	}
	return v
}
