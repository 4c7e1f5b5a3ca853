package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
)

const queueManifest = `
version: 1
host:
  listen: {{ADDR}}
  workers: 8
functions:
  orders:
    handler: {exec: [/bin/sh, ./order.sh]}
    retry: {max_attempts: 5, initial_interval: 100ms}
    triggers:
      - queue: {name: orders}
  audit:
    handler: {builtin: echo}
    triggers:
      - queue: {name: orders}
  splitter:
    handler: {builtin: echo}
`

const orderScript = `#!/bin/sh
# Records each message it handles, slowly enough that the kill finds work in flight.
event=$(cat)
n=$(printf '%s' "$event" | sed 's/.*"n": *\([0-9]*\).*/\1/')
echo "$n $FNHOST_INVOCATION_ID" >> handled.log
sleep 0.02
echo "{\"n\": $n}"
`

// TestQueueSurvivesKill sends 1 000 messages in batches, SIGKILLs the host midway,
// restarts it, and checks that every message was processed by both consumers and that
// every invocation succeeded exactly once in the store.
func TestQueueSurvivesKill(t *testing.T) {
	p := newProject(t, queueManifest, map[string]string{"order.sh": orderScript})
	p.start()

	const total = 1000
	for b := 0; b < total/100; b++ {
		var msgs []string
		for i := b * 100; i < (b+1)*100; i++ {
			msgs = append(msgs, fmt.Sprintf(`{"data": {"n": %d}, "dedup_key": "order-%d"}`, i, i))
		}
		var res struct {
			Items []struct {
				Invocations []struct{ ID, Function string } `json:"invocations"`
			} `json:"items"`
		}
		if code := p.api("POST", "/api/v1/queues/orders/messages", `{"messages": [`+strings.Join(msgs, ",")+`]}`, &res); code != 202 {
			t.Fatalf("batch %d: status %d", b, code)
		}
		if len(res.Items) != 100 || len(res.Items[0].Invocations) != 2 {
			t.Fatalf("batch %d: %d items, want 100 with 2 invocations each", b, len(res.Items))
		}
	}
	// A resent message with the same dedup key is a duplicate, not a second order.
	var dup struct {
		Items []struct {
			Invocations []struct{ Duplicate bool } `json:"invocations"`
		} `json:"items"`
	}
	p.api("POST", "/api/v1/queues/orders/messages", `{"data": {"n": 7}, "dedup_key": "order-7"}`, &dup)
	if len(dup.Items) != 1 || !dup.Items[0].Invocations[0].Duplicate {
		t.Fatalf("a resent message was not a duplicate: %+v", dup)
	}

	eventually(t, 60*time.Second, "some orders to succeed before the kill", func() bool {
		return len(p.all("function=orders&state=succeeded")) >= 200
	})
	p.kill()
	p.start()
	eventually(t, 180*time.Second, "every order to succeed", func() bool {
		return len(p.all("function=orders&state=succeeded")) == total
	})
	eventually(t, 60*time.Second, "every audit copy to succeed", func() bool {
		return len(p.all("function=audit&state=succeeded")) == total
	})
	if n := len(p.all("trigger=queue")); n != 2*total {
		t.Fatalf("%d queue invocations in the store, want %d", n, 2*total)
	}
	log, err := os.ReadFile(filepath.Join(p.dir, "handled.log"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		seen[strings.Fields(line)[0]] = true
	}
	for i := range total {
		if !seen[fmt.Sprint(i)] {
			t.Fatalf("message %d was never handled", i)
		}
	}

	// Unknown queues and bad messages are refused with JSON errors.
	var apiErr struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := p.api("POST", "/api/v1/queues/nope/messages", `{"data": 1}`, &apiErr); code != 404 || apiErr.Error.Code != "queue_not_found" {
		t.Fatalf("unknown queue: %d %+v", code, apiErr)
	}
	if code := p.api("POST", "/api/v1/queues/orders/messages", `{"dta": 1}`, &apiErr); code != 400 || apiErr.Error.Code != "bad_message" {
		t.Fatalf("misspelt field: %d %+v", code, apiErr)
	}
	if code := p.api("POST", "/api/v1/queues/orders/messages", `{"data": 1, "delay": "soon"}`, &apiErr); code != 400 || apiErr.Error.Code != "bad_message" {
		t.Fatalf("bad delay: %d %+v", code, apiErr)
	}
}

// TestHandlerEmitsMessages: a handler's output can enqueue messages, in the same
// transaction as its success; `fnhost enqueue` sends one from the command line.
func TestHandlerEmitsMessages(t *testing.T) {
	p := newProject(t, queueManifest, map[string]string{"order.sh": orderScript})
	p.start()
	var inv fnhost.Invocation
	p.api("POST", "/api/v1/functions/splitter/invocations?sync=1",
		`{"fnhost_messages": [{"queue": "orders", "data": {"n": 1}}, {"queue": "orders", "data": {"n": 2}, "delay": "100ms"}]}`, &inv)
	if inv.State != fnhost.StateSucceeded {
		t.Fatalf("splitter: %s", inv.State)
	}
	eventually(t, 20*time.Second, "the emitted messages to be handled", func() bool {
		kids := p.all("function=orders&state=succeeded&parent_id=" + inv.ID)
		return len(kids) == 2
	})
	out, err := p.cli("enqueue", "orders", "-d", `{"n": 3}`)
	if err != nil || !strings.Contains(out, "orders") || !strings.Contains(out, "audit") {
		t.Fatalf("fnhost enqueue: %v\n%s", err, out)
	}
	// Emitting to a queue nobody consumes fails the invocation for good, visibly.
	p.api("POST", "/api/v1/functions/splitter/invocations?sync=1", `{"fnhost_messages": [{"queue": "nowhere", "data": 1}]}`, &inv)
	if inv.State != fnhost.StateFailed || inv.Error == nil || !strings.Contains(*inv.Error, "nowhere") {
		t.Fatalf("emit to an unknown queue: %s %v", inv.State, inv.Error)
	}
}
