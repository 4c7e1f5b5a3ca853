package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fnhost/fnhost"
)

func init() {
	Register("echo", echo)
	Register("noop", noop)
	Register("sleep", sleep)
	Register("fail", fail)
	Register("panic", panicking)
}

// echo is the builtin "echo": its output is the event's data, and it logs one line
// naming the event.
func echo(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	fnhost.Logf(ctx, "echo: %s event %s from %s, %d bytes of data", ev.Type, ev.ID, ev.Source, len(ev.Data))
	return fnhost.Result{Output: ev.Data}, nil
}

// noop is the builtin "noop": it returns an empty output and logs nothing. Benchmarks
// use it to measure the host without a handler's cost.
func noop(context.Context, fnhost.Event) (fnhost.Result, error) {
	return fnhost.Result{}, nil
}

// defaultSleep is how long the builtin "sleep" sleeps when the event has no data.
const defaultSleep = time.Second

// sleep is the builtin "sleep". It waits for the duration in the event's data —
// {"duration":"250ms"}, {"ms":250}, "250ms" or 250 (milliseconds); defaultSleep without
// data — and returns {"slept":"250ms"}. When ctx is done first it returns an error
// wrapping ctx.Err(). Data it cannot read fails permanently.
func sleep(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	d, err := sleepDuration(ev.Data)
	if err != nil {
		return fnhost.Result{}, fnhost.Permanent(err)
	}
	fnhost.Logf(ctx, "sleep: sleeping %s", d)
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return fnhost.Result{}, fmt.Errorf("interrupted after %s of %s: %w",
			time.Since(start).Round(time.Millisecond), d, ctx.Err())
	}
	out, _ := json.Marshal(map[string]string{"slept": d.String()})
	return fnhost.Result{Output: out}, nil
}

func sleepDuration(data json.RawMessage) (time.Duration, error) {
	const want = `want data {"duration":"250ms"} or {"ms":250}`
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return defaultSleep, nil
	}
	var d time.Duration
	switch data[0] {
	case '{':
		var args struct {
			Duration *string  `json:"duration"`
			MS       *float64 `json:"ms"`
		}
		if err := json.Unmarshal(data, &args); err != nil {
			return 0, fmt.Errorf("%s: %w", want, err)
		}
		switch {
		case args.Duration != nil:
			var err error
			if d, err = time.ParseDuration(*args.Duration); err != nil {
				return 0, fmt.Errorf("%s: %w", want, err)
			}
		case args.MS != nil:
			d = time.Duration(*args.MS * float64(time.Millisecond))
		default:
			return 0, errors.New(want)
		}
	case '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return 0, fmt.Errorf("%s: %w", want, err)
		}
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%s: %w", want, err)
		}
	default:
		ms, err := strconv.ParseFloat(string(data), 64)
		if err != nil {
			return 0, errors.New(want)
		}
		d = time.Duration(ms * float64(time.Millisecond))
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %s", d)
	}
	return d, nil
}

// defaultFailMessage is the error of the builtin "fail" when the data gives none.
const defaultFailMessage = "failed on purpose"

// fail is the builtin "fail", for trying out retries and failure handling. It fails
// with the data's "message" (defaultFailMessage without one); with {"permanent":true}
// the failure is permanent; with {"until_attempt":N} it fails only while the attempt
// number is below N and then succeeds with {"attempt":N}. Data that is not such an
// object is ignored.
func fail(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	var args struct {
		Message      string `json:"message"`
		Permanent    bool   `json:"permanent"`
		UntilAttempt int    `json:"until_attempt"`
	}
	_ = json.Unmarshal(ev.Data, &args) // any data is fine: the defaults apply
	info, _ := fnhost.InfoFrom(ctx)
	if args.UntilAttempt > 0 && info.Attempt >= args.UntilAttempt {
		fnhost.Logf(ctx, "fail: attempt %d reached until_attempt %d, succeeding", info.Attempt, args.UntilAttempt)
		out, _ := json.Marshal(map[string]int{"attempt": info.Attempt})
		return fnhost.Result{Output: out}, nil
	}
	if args.Message == "" {
		args.Message = defaultFailMessage
	}
	err := errors.New(args.Message)
	if args.Permanent {
		fnhost.Logf(ctx, "fail: attempt %d failing permanently: %s", info.Attempt, args.Message)
		return fnhost.Result{}, fnhost.Permanent(err)
	}
	fnhost.Logf(ctx, "fail: attempt %d failing: %s", info.Attempt, args.Message)
	return fnhost.Result{}, err
}

// panicking is the builtin "panic": it panics, with the data's "message" when there is one,
// so that the executor's recovery can be seen at work. This package does not recover.
func panicking(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	var args struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(ev.Data, &args)
	if args.Message == "" {
		args.Message = "panic on purpose"
	}
	fnhost.Logf(ctx, "panic: %s", args.Message)
	panic("builtin panic: " + args.Message)
}
