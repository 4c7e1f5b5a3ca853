package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
)

func migrateCmd(g *globals) *cobra.Command {
	var storage string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the store's schema to this fnhost's version, then exit",
		Long: `migrate applies the schema migrations the store lacks and exits. fnhost run applies
them too at start (several instances take turns through an advisory lock on
PostgreSQL; with ?migrate=false in the URL they leave it to this command); migrate
lets a deployment do it as a step of its own. A schema newer than this fnhost knows is
an error: upgrade fnhost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if storage == "" {
				m, err := loadManifest(g.file)
				if err != nil {
					return err
				}
				storage = m.Host.Storage
			} else {
				// As the manifest reads host.storage, relative to where the command runs.
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				if storage, err = manifest.NormalizeStorage(storage, wd); err != nil {
					return &exitError{code: 2, msg: fmt.Sprintf("--storage: %v", err)}
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			shown := manifest.Host{Storage: storage}.RedactedStorage()
			n, version, err := store.Migrate(ctx, storage)
			if err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("migrate %s: %v", shown, err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d migration(s) applied, schema at version %d\n", shown, n, version)
			return nil
		},
	}
	cmd.Flags().StringVar(&storage, "storage", "", "the store: sqlite:PATH, a path, or postgres://… (default: the manifest's host.storage)")
	return cmd
}
