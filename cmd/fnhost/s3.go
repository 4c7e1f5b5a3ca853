package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/triggers/s3"
)

func s3Cmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "s3",
		Short: "Connect S3 and MinIO buckets to the manifest's s3 triggers",
	}
	cmd.AddCommand(s3SetupCmd(g))
	return cmd
}

func s3SetupCmd(g *globals) *cobra.Command {
	var target, hookURL, queueDir string
	var dryRun, create bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Print the MinIO webhook target settings and add it to each watched bucket's notifications",
		Long: `For every s3 trigger in webhook mode, setup prints the environment that gives the
MinIO server a webhook target sending to this host, then adds that target to the
notification configuration of each watched bucket (with the trigger's credentials),
keeping the bucket's other rules. Run it again at any time: it changes nothing that is
already right. With --dry-run it only prints.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := loadManifest(g.file)
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			out := cmd.OutOrStdout()
			if hookURL == "" {
				hookURL = "http://" + advertised(m.Host.Listen) + s3.WebhookPath
			}
			type group struct {
				conn  *manifest.S3Trigger
				trigs []*manifest.S3Trigger
				fns   []string
				token string
				// target is the manifest's target of the bucket's triggers, or --target.
				target string
			}
			groups := map[string]*group{}
			for _, name := range m.Order {
				for _, tr := range m.Functions[name].Triggers {
					c := tr.S3
					if c == nil || c.Mode != "webhook" {
						continue
					}
					id := c.Endpoint + " " + c.Bucket
					gr := groups[id]
					if gr == nil {
						gr = &group{conn: c}
						groups[id] = gr
					}
					gr.trigs = append(gr.trigs, c)
					gr.fns = append(gr.fns, name)
					if gr.token == "" {
						gr.token = c.Token.Reveal()
					}
					if gr.target == "" && c.Target != "" && !cmd.Flags().Changed("target") {
						gr.target = c.Target
					}
				}
			}
			if len(groups) == 0 {
				fmt.Fprintf(out, "%s: no s3 trigger in webhook mode\n", m.Path)
				return nil
			}
			ids := make([]string, 0, len(groups))
			for id := range groups {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			tokens := map[string]bool{}
			var targets []string
			for _, id := range ids {
				gr := groups[id]
				tokens[gr.token] = true
				if gr.target == "" {
					gr.target = target
				}
				if !slices.Contains(targets, gr.target) {
					targets = append(targets, gr.target)
				}
			}
			if len(tokens) > 1 {
				fmt.Fprintln(out, "note: the s3 triggers use different tokens; one MinIO target sends one token, so give each server its own target (--target) or use one token")
			}
			token := groups[ids[0]].token
			shown := token
			if shown != "" {
				shown = "<the s3 trigger's token>"
			}
			for _, tg := range targets {
				fmt.Fprintf(out, "1. Start the MinIO server with the webhook target %q (environment; the suffix's case matters):\n\n", tg)
				for _, kv := range s3.ServerSettings(tg, hookURL, shown, queueDir) {
					fmt.Fprintf(out, "   %s\n", kv)
				}
				fmt.Fprintf(out, "\n   (or at runtime: mc admin config set ALIAS notify_webhook:%s endpoint=%s auth_token=... and restart)\n", tg, hookURL)
			}
			if queueDir == "" {
				fmt.Fprintln(out, "   Without a queue_dir MinIO sends each event once, at once; what it fails to send is found by fnhost's listing (at start and every reconcile).")
			}
			fmt.Fprintf(out, "\n2. Bucket notifications:\n\n")
			failed := 0
			for _, id := range ids {
				gr := groups[id]
				plan := s3.PlanNotification(gr.target, gr.trigs)
				desc := fmt.Sprintf("   %s bucket %q -> %s events %s", gr.conn.Endpoint, plan.Bucket, s3.TargetARN(gr.target), strings.Join(plan.Events, ","))
				if plan.Prefix != "" {
					desc += " prefix " + plan.Prefix
				}
				if plan.Suffix != "" {
					desc += " suffix " + plan.Suffix
				}
				desc += " (functions " + strings.Join(gr.fns, ", ") + ")"
				switch {
				case dryRun:
					fmt.Fprintf(out, "%s: not applied (--dry-run)\n", desc)
				case gr.conn.Endpoint == "":
					fmt.Fprintf(out, "%s: skipped, the trigger has no endpoint (AWS S3 sends to SNS, SQS or Lambda, not to a webhook: use mode: sqs)\n", desc)
				default:
					ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
					var err error
					if create {
						var made bool
						if made, err = s3.EnsureBucket(ctx, gr.conn); made {
							fmt.Fprintf(out, "   created bucket %q\n", plan.Bucket)
						}
					}
					if err == nil {
						err = s3.ApplyNotification(ctx, gr.conn, plan)
					}
					cancel()
					if err != nil {
						fmt.Fprintf(out, "%s: FAILED: %v\n", desc, err)
						failed++
						continue
					}
					fmt.Fprintf(out, "%s: ok\n", desc)
				}
			}
			if failed > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("%d bucket(s) not configured", failed)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", manifest.DefaultS3Target, "the ID of the MinIO webhook target (default: the triggers' target:, then fnhost)")
	cmd.Flags().StringVar(&hookURL, "url", "", "the URL MinIO sends to (default: http://<host.listen>"+s3.WebhookPath+")")
	cmd.Flags().StringVar(&queueDir, "queue-dir", "", "a directory where MinIO keeps events it could not send (adds up to 3 s of latency)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the settings without changing any bucket")
	cmd.Flags().BoolVar(&create, "create-buckets", false, "create the watched buckets that do not exist yet")
	return cmd
}

// advertised is the address other machines reach a listen address at: its host, or this
// machine's name when it listens on every interface.
func advertised(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}
