package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/postgres"
	"github.com/fnhost/fnhost/store/sqlite"
)

func migrateCmd(g *globals) *cobra.Command {
	var storage string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the store's schema to this fnhost's version, then exit",
		Long: `migrate applies the schema migrations the store lacks and exits. fnhost run applies
them too at start (several instances take turns through an advisory lock on
PostgreSQL); migrate lets a deployment do it as a step of its own. A schema newer than
this fnhost knows is an error: upgrade fnhost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if storage == "" {
				m, err := loadManifest(g.file)
				if err != nil {
					return err
				}
				storage = m.Host.Storage
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			out := cmd.OutOrStdout()
			shown := manifest.Host{Storage: storage}.RedactedStorage()
			if strings.HasPrefix(storage, "postgres:") || strings.HasPrefix(storage, "postgresql:") {
				n, err := postgres.Migrate(ctx, storage)
				if err != nil {
					return &exitError{code: 1, msg: fmt.Sprintf("migrate %s: %v", shown, err)}
				}
				fmt.Fprintf(out, "%s: %d migration(s) applied, schema at version %d\n", shown, n, postgres.SchemaVersion())
				return nil
			}
			st, err := store.Open(ctx, storage)
			if err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("migrate %s: %v", shown, err)}
			}
			defer st.Close()
			fmt.Fprintf(out, "%s: schema at version %d\n", shown, sqlite.SchemaVersion())
			return nil
		},
	}
	cmd.Flags().StringVar(&storage, "storage", "", "the store (default: the manifest's host.storage)")
	return cmd
}
