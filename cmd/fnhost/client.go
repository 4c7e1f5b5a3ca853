package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
)

// client talks to a running host's /api/v1.
type client struct {
	base   string
	apiKey string
	http   *http.Client
}

// newClient finds the host from --addr, or else from the manifest's host.listen.
func newClient(g *globals) *client {
	addr, key := g.addr, g.apiKey
	if key == "" {
		key = os.Getenv("FNHOST_API_KEY")
	}
	if addr == "" || key == "" {
		if m, err := manifest.Load(g.file); err == nil {
			if addr == "" {
				addr = m.Host.Listen
			}
			if key == "" {
				key = m.Host.APIKey.Reveal()
			}
		}
	}
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	if !strings.Contains(addr, "://") {
		if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		addr = "http://" + addr
	}
	return &client{base: strings.TrimRight(addr, "/"), apiKey: key, http: &http.Client{}}
}

// do sends a request and decodes a JSON answer into out; an API error becomes an error
// with the API's message.
func (c *client) do(method, path string, body []byte, out any) (int, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, &exitError{code: 1, msg: fmt.Sprintf("fnhost: cannot reach the host at %s (is `fnhost run` running? set --addr): %v", c.base, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return resp.StatusCode, &exitError{code: 1, msg: fmt.Sprintf("fnhost: %s (%s)", e.Error.Message, e.Error.Code)}
		}
		return resp.StatusCode, &exitError{code: 1, msg: fmt.Sprintf("fnhost: %s %s: %s", method, path, resp.Status)}
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(raw, out)
	}
	return resp.StatusCode, nil
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// readData reads -d: inline JSON, @file, or @- for stdin.
func readData(d string) ([]byte, error) {
	var b []byte
	var err error
	switch {
	case d == "@-":
		b, err = io.ReadAll(os.Stdin)
	case strings.HasPrefix(d, "@"):
		b, err = os.ReadFile(d[1:])
	default:
		b = []byte(d)
	}
	if err != nil {
		return nil, &exitError{code: 2, msg: fmt.Sprintf("fnhost: read data: %v", err)}
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && !json.Valid(t) {
		return nil, &exitError{code: 2, msg: "fnhost: the data is not valid JSON (quote text as a JSON string: -d '\"hello\"')"}
	}
	return b, nil
}

func invokeCmd(g *globals) *cobra.Command {
	var data, delay, dedup string
	var sync bool
	var priority int
	cmd := &cobra.Command{
		Use:   "invoke FUNCTION",
		Short: "Invoke a function through the running host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readData(data)
			if err != nil {
				return err
			}
			q := url.Values{"trigger": {"cli"}}
			if sync {
				q.Set("sync", "1")
			}
			if delay != "" {
				q.Set("delay", delay)
			}
			if dedup != "" {
				q.Set("dedup_key", dedup)
			}
			if priority != 0 {
				q.Set("priority", fmt.Sprint(priority))
			}
			var out map[string]any
			c := newClient(g)
			if _, err := c.do("POST", "/api/v1/functions/"+url.PathEscape(args[0])+"/invocations?"+q.Encode(), body, &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s  %s  %v\n", out["id"], args[0], out["state"])
			if out["duplicate"] == true {
				fmt.Fprintln(w, "(duplicate: an invocation with this dedup key exists)")
			}
			if sync {
				if o, ok := out["output"]; ok {
					b, _ := json.MarshalIndent(o, "", "  ")
					fmt.Fprintf(w, "output: %s\n", b)
				}
				if e, ok := out["error"].(string); ok && e != "" {
					fmt.Fprintf(w, "error: %s\n", e)
				}
				if out["state"] == string(fnhost.StateFailed) {
					return &exitError{code: 1}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "the event data: JSON, @file or @- for stdin")
	cmd.Flags().BoolVar(&sync, "sync", false, "wait for the result")
	cmd.Flags().StringVar(&delay, "delay", "", "run after this long (30s, 5m)")
	cmd.Flags().StringVar(&dedup, "dedup-key", "", "make the invocation unique for this key")
	cmd.Flags().IntVar(&priority, "priority", 0, "higher runs first")
	cmd.Flags().BoolVar(&g.json, "json", false, "print JSON")
	return cmd
}

func runsCmd(g *globals) *cobra.Command {
	var function, state, trigger, cursor string
	var limit int
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List invocations, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"function": function, "state": state, "trigger": trigger, "cursor": cursor} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", fmt.Sprint(limit))
			var page struct {
				Items      []fnhost.Invocation `json:"items"`
				NextCursor string              `json:"next_cursor"`
			}
			if _, err := newClient(g).do("GET", "/api/v1/invocations?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, page)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tFUNCTION\tSTATE\tATTEMPT\tTRIGGER\tCREATED\tERROR")
			for _, inv := range page.Items {
				e := ""
				if inv.Error != nil {
					e = oneLine(*inv.Error, 60)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", inv.ID, inv.Function, inv.State, inv.Attempt, inv.MaxAttempts,
					inv.Trigger, inv.CreatedAt.Local().Format(time.DateTime), e)
			}
			tw.Flush()
			if page.NextCursor != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "more: --cursor %s\n", page.NextCursor)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&function, "function", "", "only this function")
	cmd.Flags().StringVar(&state, "state", "", "only this state (scheduled, pending, running, succeeded, failed, cancelled, awaiting)")
	cmd.Flags().StringVar(&trigger, "trigger", "", "only this trigger kind")
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue after a previous page")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many")
	cmd.Flags().BoolVar(&g.json, "json", false, "print JSON")
	return cmd
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}

func showCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one invocation with its event, attempts, logs and output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var inv fnhost.Invocation
			if _, err := newClient(g).do("GET", "/api/v1/invocations/"+url.PathEscape(args[0]), nil, &inv); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, inv)
			}
			printInvocation(cmd, &inv)
			return nil
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print JSON")
	return cmd
}

func printInvocation(cmd *cobra.Command, inv *fnhost.Invocation) {
	w := cmd.OutOrStdout()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", inv.ID)
	fmt.Fprintf(tw, "function\t%s\n", inv.Function)
	fmt.Fprintf(tw, "state\t%s\n", inv.State)
	fmt.Fprintf(tw, "attempt\t%d of %d\n", inv.Attempt, inv.MaxAttempts)
	fmt.Fprintf(tw, "trigger\t%s\n", inv.Trigger)
	if inv.DedupKey != "" {
		fmt.Fprintf(tw, "dedup key\t%s\n", inv.DedupKey)
	}
	if inv.ParentID != nil {
		fmt.Fprintf(tw, "parent\t%s (%s)\n", *inv.ParentID, inv.Continuation)
	}
	fmt.Fprintf(tw, "created\t%s\n", inv.CreatedAt.Local().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "run at\t%s\n", inv.RunAt.Local().Format(time.RFC3339Nano))
	if inv.FinishedAt != nil {
		fmt.Fprintf(tw, "finished\t%s\n", inv.FinishedAt.Local().Format(time.RFC3339Nano))
	}
	if inv.Error != nil {
		fmt.Fprintf(tw, "error\t%s\n", *inv.Error)
	}
	tw.Flush()
	if len(inv.Event) > 0 {
		fmt.Fprintf(w, "\nevent:\n%s\n", indentJSON(inv.Event))
	}
	if len(inv.Output) > 0 && string(inv.Output) != "null" {
		fmt.Fprintf(w, "\noutput:\n%s\n", indentJSON(inv.Output))
	}
	for _, a := range inv.Attempts {
		fmt.Fprintf(w, "\nattempt %d: %s in %.1f ms (%s)", a.Number, a.Outcome, a.DurationMS, a.StartedAt.Local().Format(time.RFC3339Nano))
		if a.Error != "" {
			fmt.Fprintf(w, "\n  error: %s", a.Error)
		}
		fmt.Fprintln(w)
		if a.Log != "" {
			for _, line := range strings.Split(strings.TrimRight(a.Log, "\n"), "\n") {
				fmt.Fprintf(w, "  | %s\n", line)
			}
		}
	}
}

func indentJSON(b json.RawMessage) string {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "  ", "  ") != nil {
		return "  " + string(b)
	}
	return "  " + buf.String()
}

func retryCmd(g *globals) *cobra.Command {
	return actionCmd(g, "retry", "Run a finished invocation again")
}

func cancelCmd(g *globals) *cobra.Command {
	return actionCmd(g, "cancel", "Cancel an invocation that has not finished")
}

func actionCmd(g *globals, action, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var inv fnhost.Invocation
			if _, err := newClient(g).do("POST", "/api/v1/invocations/"+url.PathEscape(args[0])+"/"+action, nil, &inv); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, inv)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  %s\n", inv.ID, inv.Function, inv.State)
			return nil
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print JSON")
	return cmd
}

func enqueueCmd(g *globals) *cobra.Command {
	var data, delay, dedup string
	var priority int
	cmd := &cobra.Command{
		Use:   "enqueue QUEUE",
		Short: "Send a message to a durable queue of the running host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readData(data)
			if err != nil {
				return err
			}
			if len(bytes.TrimSpace(body)) == 0 {
				body = []byte("null")
			}
			msg := fnhost.Message{Data: json.RawMessage(body), Delay: delay, DedupKey: dedup, Priority: priority}
			req, _ := json.Marshal(msg)
			var out struct {
				Items []struct {
					Invocations []struct {
						ID        string `json:"id"`
						Function  string `json:"function"`
						Duplicate bool   `json:"duplicate"`
					} `json:"invocations"`
				} `json:"items"`
			}
			if _, err := newClient(g).do("POST", "/api/v1/queues/"+url.PathEscape(args[0])+"/messages", req, &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd, out)
			}
			for _, it := range out.Items {
				for _, inv := range it.Invocations {
					dup := ""
					if inv.Duplicate {
						dup = "  (duplicate)"
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s  %s%s\n", inv.ID, inv.Function, dup)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "the message data: JSON, @file or @- for stdin")
	cmd.Flags().StringVar(&delay, "delay", "", "deliver after this long (30s, 5m)")
	cmd.Flags().StringVar(&dedup, "dedup-key", "", "make the message unique for this key")
	cmd.Flags().IntVar(&priority, "priority", 0, "higher runs first")
	cmd.Flags().BoolVar(&g.json, "json", false, "print JSON")
	return cmd
}
