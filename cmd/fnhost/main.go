// Command fnhost runs the function host and talks to a running one.
//
//	fnhost run                   start the host from ./functions.yaml
//	fnhost validate              check the manifest and print every problem
//	fnhost invoke FN -d JSON     run a function through the host's API
//	fnhost runs --state failed   list invocations
//	fnhost show ID               one invocation with its attempts and logs
//	fnhost retry ID / cancel ID  steer an invocation
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	// Cron timezones work in images without a timezone database.
	_ "time/tzdata"
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	root := newRoot()
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "fnhost:", err)
		os.Exit(1)
	}
}

type globals struct {
	file   string
	addr   string
	apiKey string
	json   bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "fnhost",
		Short:         "fnhost runs functions on triggers, durably: nothing is lost, nothing fires twice",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.file, "file", "f", "functions.yaml", "the manifest")
	root.PersistentFlags().StringVar(&g.addr, "addr", "", "the host's address for commands that use its API (default: the manifest's host.listen)")
	root.PersistentFlags().StringVar(&g.apiKey, "api-key", "", "API key (default: $FNHOST_API_KEY, then the manifest's host.api_key)")
	root.AddCommand(
		runCmd(g), validateCmd(g), invokeCmd(g), runsCmd(g), showCmd(g),
		retryCmd(g), cancelCmd(g), enqueueCmd(g), s3Cmd(g), migrateCmd(g), initCmd(), versionCmd(),
	)
	return root
}
