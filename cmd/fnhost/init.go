package main

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// skeleton is the project `fnhost init` writes.
//
//go:embed skeleton
var skeleton embed.FS

func initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init [DIR]",
		Short: "Create a project: functions.yaml with one function per local trigger kind, handlers, a README",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if err := scaffold(dir); err != nil {
				return &exitError{code: 1, msg: "fnhost init: " + err.Error()}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "created an fnhost project in %s\n\n", dir)
			if dir != "." {
				fmt.Fprintf(w, "  cd %s\n", dir)
			}
			fmt.Fprintln(w, "  fnhost run")
			fmt.Fprintln(w, `  curl -s -XPOST localhost:8080/hooks/hello -d '{"name":"Ada"}'`)
			return nil
		},
	}
}

// scaffold writes the skeleton into dir, refusing to overwrite any file.
func scaffold(dir string) error {
	var files []string
	err := fs.WalkDir(skeleton, "skeleton", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(path, "skeleton/")
		if _, err := os.Stat(filepath.Join(dir, rel)); err == nil {
			return fmt.Errorf("%s already exists; not overwriting it", filepath.Join(dir, rel))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		return err
	}
	for _, rel := range files {
		body, err := skeleton.ReadFile("skeleton/" + rel)
		if err != nil {
			return err
		}
		target := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".sh") || strings.HasSuffix(rel, ".py") {
			mode = 0o755
		}
		if err := os.WriteFile(target, body, mode); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(dir, "inbox"), 0o755)
}
