package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/functions"
	"github.com/fnhost/fnhost/host"
	"github.com/fnhost/fnhost/manifest"
)

func loadManifest(path string) (*manifest.Manifest, error) {
	m, err := manifest.Load(path)
	if err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	return m, nil
}

func runCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Start the host: triggers, executor, API and metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := loadManifest(g.file)
			if err != nil {
				return err
			}
			h, err := host.New(m)
			if err != nil {
				return &exitError{code: 1, msg: "fnhost: " + err.Error()}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return h.Run(ctx)
		},
	}
}

func validateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the manifest and print every problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := loadManifest(g.file)
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			var problems int
			for _, name := range m.Order {
				if _, err := functions.New(m.Functions[name], functions.Options{}); err != nil {
					fmt.Fprintf(os.Stderr, "%s:%d:%d: %v\n", m.Path, m.Functions[name].Pos.Line, m.Functions[name].Pos.Column, err)
					problems++
				}
			}
			if problems > 0 {
				return &exitError{code: 1}
			}
			noun := "functions"
			if len(m.Order) == 1 {
				noun = "function"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok, %d %s\n", g.file, len(m.Order), noun)
			return nil
		},
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the fnhost version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "fnhost", fnhost.Version)
		},
	}
}
