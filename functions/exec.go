package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
)

// DefaultGracePeriod is how long an exec handler's process group has between SIGTERM
// and SIGKILL unless the manifest sets grace_period.
const DefaultGracePeriod = 5 * time.Second

// The environment variables through which an exec handler learns about its invocation.
const (
	EnvFunction     = "FNHOST_FUNCTION"
	EnvInvocationID = "FNHOST_INVOCATION_ID"
	EnvAttempt      = "FNHOST_ATTEMPT"
	EnvMaxAttempts  = "FNHOST_MAX_ATTEMPTS"
	EnvTrigger      = "FNHOST_TRIGGER"
	// EnvDeadline is the attempt's deadline in RFC 3339 with nanoseconds, UTC; it is
	// absent when the attempt has none.
	EnvDeadline = "FNHOST_DEADLINE"
	// EnvInputFile is the local copy of the invocation's input, when a trigger provides
	// one (the s3 trigger with download: true); unset otherwise.
	EnvInputFile = "FNHOST_INPUT_FILE"
)

var protocolEnv = []string{EnvFunction, EnvInvocationID, EnvAttempt, EnvMaxAttempts, EnvTrigger, EnvDeadline, EnvInputFile}

const (
	// smallStdin is the largest event written into the stdin pipe before the process
	// starts: PIPE_BUF, which an empty pipe always takes whole. Larger events are fed
	// by a goroutine while the process reads.
	smallStdin = 4096
	// drainTimeout bounds the reading of stdout and stderr once the process exited and
	// its group was killed: only a process that left the group (setsid) can still hold
	// the pipes then, and the attempt does not wait for it.
	drainTimeout = time.Second
)

// ExitError is the failure of an exec handler's process: a non-zero exit status, or
// death by a signal. When the host itself signalled the process because the attempt's
// context was done, the handler's error wraps both ctx.Err() and the ExitError.
type ExitError struct {
	// Code is the exit status, or -1 when the process was killed by a signal.
	Code int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
}

// Error reads "exit status N" or "killed by signal SIGNAME".
func (e *ExitError) Error() string {
	if e.Signal != 0 {
		return "killed by signal " + signalName(e.Signal)
	}
	return "exit status " + strconv.Itoa(e.Code)
}

func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return sig.String()
}

// execHandler runs one process per attempt, in a process group of its own.
type execHandler struct {
	name      string
	path      string   // the program, resolved once
	argv      []string // argv[0] as written in the manifest
	dir       string
	env       []string // the host's environment and the manifest's env, without protocolEnv
	permanent []int
	grace     time.Duration
	maxOutput int
}

var _ fnhost.Handler = (*execHandler)(nil)

func newExec(fn *manifest.Function, opts Options) (*execHandler, error) {
	hc := fn.Handler
	prog := hc.Exec[0]
	if prog == "" {
		return nil, errors.New("exec: empty program name")
	}
	dir := hc.Dir
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("exec: working directory %q: %w", dir, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("exec: working directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("exec: working directory %s is not a directory", abs)
		}
		dir = abs
	}
	path, err := resolveProgram(prog, dir)
	if err != nil {
		return nil, err
	}
	env, err := execEnv(os.Environ(), hc.Env)
	if err != nil {
		return nil, err
	}
	grace := hc.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	return &execHandler{
		name:      fn.Name,
		path:      path,
		argv:      slices.Clone(hc.Exec),
		dir:       dir,
		env:       env,
		permanent: slices.Clone(hc.PermanentExitCodes),
		grace:     grace,
		maxOutput: opts.maxOutput(),
	}, nil
}

// resolveProgram finds the program the way a shell would, except that a relative path
// containing a slash is taken relative to dir (the handler's working directory) rather
// than to the host's. The result is absolute.
func resolveProgram(prog, dir string) (string, error) {
	p := prog
	if strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
		base := dir
		if base == "" {
			wd, err := os.Getwd()
			if err != nil {
				return "", fmt.Errorf("exec: program %q: %w", prog, err)
			}
			base = wd
		}
		p = filepath.Join(base, prog)
	}
	path, err := exec.LookPath(p)
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		if p != prog {
			return "", fmt.Errorf("exec: program %q (%s) not found: %w", prog, p, err)
		}
		return "", fmt.Errorf("exec: program %q not found: %w", prog, err)
	}
	if !filepath.IsAbs(path) {
		// Found through a relative PATH entry: pin it before the working directory matters.
		if path, err = filepath.Abs(path); err != nil {
			return "", fmt.Errorf("exec: program %q: %w", prog, err)
		}
	}
	return path, nil
}

// execEnv returns host with the protocol variables removed and extra set, sorted by
// name after the host's variables so that the process sees the same environment every
// time.
func execEnv(host []string, extra map[string]string) ([]string, error) {
	for k := range extra {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("exec: env: invalid variable name %q", k)
		}
		if slices.Contains(protocolEnv, k) {
			return nil, fmt.Errorf("exec: env: %s is set by fnhost for every attempt", k)
		}
		if strings.ContainsRune(extra[k], 0) {
			return nil, fmt.Errorf("exec: env: value of %s contains a NUL byte", k)
		}
	}
	env := make([]string, 0, len(host)+len(extra)+len(protocolEnv))
	for _, kv := range host {
		k, _, _ := strings.Cut(kv, "=")
		if _, override := extra[k]; override || slices.Contains(protocolEnv, k) {
			continue
		}
		env = append(env, kv)
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env, nil
}

// environ returns the environment of one attempt's process.
func (h *execHandler) environ(ctx context.Context, info fnhost.Info) []string {
	env := make([]string, len(h.env), len(h.env)+len(protocolEnv))
	copy(env, h.env)
	function := info.Function
	if function == "" {
		function = h.name
	}
	env = append(env,
		EnvFunction+"="+function,
		EnvInvocationID+"="+info.InvocationID,
		EnvAttempt+"="+strconv.Itoa(info.Attempt),
		EnvMaxAttempts+"="+strconv.Itoa(info.MaxAttempts),
		EnvTrigger+"="+info.Trigger,
	)
	deadline := info.Deadline
	if deadline.IsZero() {
		deadline, _ = ctx.Deadline()
	}
	if !deadline.IsZero() {
		env = append(env, EnvDeadline+"="+deadline.UTC().Format(time.RFC3339Nano))
	}
	if in := fnhost.InputFile(ctx); in != "" {
		env = append(env, EnvInputFile+"="+in)
	}
	return env
}

// Invoke runs the process once: the event as JSON on its stdin, its stdout as the
// output, its stderr streamed into the attempt's log. The process leads a process
// group of its own. When ctx is done the group gets SIGTERM, and SIGKILL after the
// grace period; the error then wraps ctx.Err(). When the process exits, whatever it
// left running in its group is killed, so nothing outlives the attempt.
func (h *execHandler) Invoke(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	if err := ctx.Err(); err != nil {
		return fnhost.Result{}, fmt.Errorf("not started: %w", ctxError(ctx))
	}
	info, _ := fnhost.InfoFrom(ctx)
	payload, err := json.Marshal(ev)
	if err != nil {
		return fnhost.Result{}, fnhost.Permanent(fmt.Errorf("encode event: %w", err))
	}
	r, err := h.run(ctx, info, payload)
	if err != nil {
		return fnhost.Result{}, err
	}
	return h.outcome(ctx, info, r)
}

// run is what one process did.
type run struct {
	state     *os.ProcessState
	waitErr   error
	stdout    []byte
	overflow  bool // stdout exceeded the cap
	detached  bool // a process outside the group held stdout or stderr open
	terminate bool // the host sent SIGTERM because ctx was done
	killed    bool // the host sent SIGKILL after the grace period
}

// run starts the process and collects it.
func (h *execHandler) run(ctx context.Context, info fnhost.Info, payload []byte) (*run, error) {
	var (
		files   []*os.File // every descriptor to close on the way out
		child   [3]*os.File
		stdinW  *os.File
		stdoutR *os.File
		stderrR *os.File
	)
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	var err error
	if child[0], stdinW, err = pipe(); err == nil {
		if stdoutR, child[1], err = pipe(); err == nil {
			if info.Log != nil {
				stderrR, child[2], err = pipe()
			} else if child[2], err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
				files = append(files, child[2])
			}
		}
	}
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("open pipes: %w", err)
	}
	if len(payload) <= smallStdin {
		// An empty pipe takes PIPE_BUF bytes whole: no writer goroutine needed.
		_, err = stdinW.Write(payload)
		_ = stdinW.Close()
		stdinW = nil
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("write event to stdin: %w", err)
		}
	}

	proc, err := os.StartProcess(h.path, h.argv, &os.ProcAttr{
		Dir:   h.dir,
		Env:   h.environ(ctx, info),
		Files: child[:],
		Sys: &syscall.SysProcAttr{
			Setpgid: true,
			// Should the host die, its handler goes too, instead of running on
			// beside the retry that the rescued invocation gets.
			Pdeathsig: syscall.SIGKILL,
		},
	})
	for _, f := range child {
		_ = f.Close() // the child has its copies
	}
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("start %s: %w", h.path, err)
	}
	defer closeAll()

	k := &groupKiller{pgid: proc.Pid, grace: h.grace}
	stopAfter := context.AfterFunc(ctx, k.terminate)

	var wg sync.WaitGroup
	if stdinW != nil {
		wg.Go(func() {
			_, _ = stdinW.Write(payload) // EPIPE when the process does not read it all: fine
			_ = stdinW.Close()
		})
	}
	var logDetached bool
	if stderrR != nil {
		wg.Go(func() { logDetached = copyLog(info.Log, stderrR) })
	}

	r := &run{}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		if err := waitExited(proc.Pid); err != nil {
			// The process cannot be watched without reaping it (SIGCHLD ignored?):
			// reap it here and accept killing its group afterwards.
			r.state, r.waitErr = proc.Wait()
		}
		k.finish()
		stopAfter()
		deadline := time.Now().Add(drainTimeout)
		_ = stdoutR.SetReadDeadline(deadline)
		if stderrR != nil {
			_ = stderrR.SetReadDeadline(deadline)
		}
		if stdinW != nil {
			_ = stdinW.SetWriteDeadline(deadline)
		}
	}()

	r.stdout, r.overflow, r.detached = readOutput(stdoutR, h.maxOutput)
	wg.Wait()
	<-exited
	if r.state == nil && r.waitErr == nil {
		r.state, r.waitErr = proc.Wait()
	}
	r.detached = r.detached || logDetached
	r.terminate, r.killed = k.outcome()
	return r, nil
}

// outcome turns what the process did into the attempt's result.
func (h *execHandler) outcome(ctx context.Context, info fnhost.Info, r *run) (fnhost.Result, error) {
	if r.waitErr != nil {
		return fnhost.Result{}, fmt.Errorf("wait: %w", r.waitErr)
	}
	var exitErr *ExitError
	if ws, ok := r.state.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Signaled():
			exitErr = &ExitError{Code: -1, Signal: ws.Signal()}
		case ws.Exited() && ws.ExitStatus() != 0:
			exitErr = &ExitError{Code: ws.ExitStatus()}
		}
	} else if !r.state.Success() {
		exitErr = &ExitError{Code: r.state.ExitCode()}
	}
	if r.detached {
		fnhost.Logf(ctx, "fnhost: a process that left the process group still held stdout or stderr open; stopped reading")
	}
	if r.terminate {
		cause := ctxError(ctx)
		fnhost.Logf(ctx, "fnhost: %v: sent SIGTERM to process group %d", cause, r.state.Pid())
		if r.killed {
			fnhost.Logf(ctx, "fnhost: still running after the %s grace period: sent SIGKILL", h.grace)
		}
		logStdout(info, r.stdout)
		if exitErr != nil {
			return fnhost.Result{}, fmt.Errorf("%w (%w)", cause, exitErr)
		}
		return fnhost.Result{}, fmt.Errorf("%w (exited 0 after SIGTERM)", cause)
	}
	if exitErr != nil {
		logStdout(info, r.stdout)
		var err error = exitErr
		if exitErr.Signal == 0 && slices.Contains(h.permanent, exitErr.Code) {
			return fnhost.Result{}, fnhost.Permanent(err)
		}
		return fnhost.Result{}, err
	}
	if r.overflow {
		return fnhost.Result{}, fmt.Errorf("stdout: %w", &OutputTooLargeError{Limit: h.maxOutput})
	}
	return fnhost.Result{Output: r.stdout}, nil
}

// logStdout puts the stdout of a failed attempt into its log: it is no result, and
// scripts often print their complaints there.
func logStdout(info fnhost.Info, out []byte) {
	const max = 4096
	if info.Log == nil || len(out) == 0 {
		return
	}
	if len(out) > max {
		_, _ = fmt.Fprintf(info.Log, "fnhost: stdout of the failed attempt (first %d of %d bytes):\n", max, len(out))
		out = out[:max]
	} else {
		_, _ = fmt.Fprintf(info.Log, "fnhost: stdout of the failed attempt:\n")
	}
	_, _ = info.Log.Write(out)
	if out[len(out)-1] != '\n' {
		_, _ = io.WriteString(info.Log, "\n")
	}
}

// ctxError is ctx.Err(), with the cause of the cancellation when it says more.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 8192); return &b }}

// copyLog streams r into w as it arrives. It reports whether it stopped at the read
// deadline rather than at the end of the stream. Write errors do not stop it: the
// process must never block on a full stderr pipe.
func copyLog(w io.Writer, r *os.File) (deadline bool) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
		}
		if err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

// readOutput reads r to its end, keeping at most limit bytes (all if limit < 0) and
// reporting whether there were more. It reports whether it stopped at the read
// deadline rather than at the end of the stream.
func readOutput(r *os.File, limit int) (out []byte, overflow, deadline bool) {
	var tmp []byte
	for {
		if limit >= 0 && len(out) >= limit {
			// Past the cap: keep draining so that the process never blocks.
			if tmp == nil {
				bp := bufPool.Get().(*[]byte)
				defer bufPool.Put(bp)
				tmp = *bp
			}
			n, err := r.Read(tmp)
			if n > 0 {
				overflow = true
			}
			if err != nil {
				return out, overflow, errors.Is(err, os.ErrDeadlineExceeded)
			}
			continue
		}
		if len(out) == cap(out) {
			out = slices.Grow(out, min(max(512, cap(out)), 1<<20))
		}
		end := cap(out)
		if limit >= 0 {
			end = min(end, limit)
		}
		n, err := r.Read(out[len(out):end])
		out = out[:len(out)+n]
		if err != nil {
			return out, overflow, errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

// waitExited blocks until the process pid has exited, without reaping it: while it is
// a zombie its pid, and so its process group id, cannot be reused, and signalling the
// group cannot hit a stranger.
func waitExited(pid int) error {
	var si unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// groupKiller signals the process group of one attempt: SIGTERM when the attempt's
// context is done, SIGKILL after the grace period, and SIGKILL to whatever is left
// once the group's leader exited. After finish it sends nothing more.
type groupKiller struct {
	pgid  int
	grace time.Duration

	mu     sync.Mutex
	done   bool
	termed bool
	killed bool
	timer  *time.Timer
}

// terminate sends SIGTERM to the group and arms the SIGKILL.
func (k *groupKiller) terminate() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done || k.termed {
		return
	}
	k.termed = true
	_ = syscall.Kill(-k.pgid, syscall.SIGTERM)
	k.timer = time.AfterFunc(k.grace, k.kill)
}

// kill sends SIGKILL to the group at the end of the grace period.
func (k *groupKiller) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return
	}
	k.killed = true
	_ = syscall.Kill(-k.pgid, syscall.SIGKILL)
}

// finish kills what is left of the group; it must be called while the leader is an
// unreaped zombie.
func (k *groupKiller) finish() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.done = true
	if k.timer != nil {
		k.timer.Stop()
	}
	_ = syscall.Kill(-k.pgid, syscall.SIGKILL)
}

// outcome reports which signals the host sent because the context was done.
func (k *groupKiller) outcome() (terminated, killed bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.termed, k.killed
}
