// Command embedded is a host binary with its own Go functions: the way to run Go code
// as fnhost handlers without a process per invocation.
//
//	cd examples/embedded && go run . run
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/host"
	"github.com/fnhost/fnhost/manifest"
)

// greet answers {"greeting": "Hello, NAME!"}; a missing name fails for good, since a
// retry would not bring one.
func greet(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(ev.Data, &in); err != nil || strings.TrimSpace(in.Name) == "" {
		return fnhost.Result{}, fnhost.Permanent(errors.New(`the data needs a "name"`))
	}
	info, _ := fnhost.InfoFrom(ctx)
	fnhost.Logf(ctx, "greeting %s (attempt %d)", in.Name, info.Attempt)
	out, _ := json.Marshal(map[string]string{"greeting": fmt.Sprintf("Hello, %s!", in.Name)})
	return fnhost.Result{Output: out}, nil
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: embedded run")
		os.Exit(2)
	}
	m, err := manifest.Load("functions.yaml")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	h, err := host.New(m, host.WithFunction("greet", greet))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := h.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
