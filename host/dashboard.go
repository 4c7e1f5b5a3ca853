package host

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/dashboard"
)

// mountDashboard serves the dashboard at /dashboard/ (and redirects / to it, unless an
// HTTP trigger takes /), when the manifest enables it.
func (h *Host) mountDashboard() error {
	if !h.m.Host.Dashboard.Enabled {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := dashboard.New(ctx, dashboard.Config{
		Store: h.st, Backend: dashboardBackend{h}, APIKey: h.apiKey, ReadOnly: h.m.Host.Dashboard.ReadOnly,
		Logger: h.log,
	})
	if err != nil {
		return err
	}
	h.dash = d
	h.mux.Handle(dashboard.Prefix, d.Handler())
	if !h.rootTaken() {
		h.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, dashboard.Prefix, http.StatusFound)
		})
	}
	return nil
}

// rootTaken reports whether an HTTP trigger serves the path /.
func (h *Host) rootTaken() bool {
	for _, f := range h.m.Functions {
		for _, t := range f.Triggers {
			if t.HTTP != nil && t.HTTP.Path == "/" {
				return true
			}
		}
	}
	return false
}

// dashboardBackend is what the dashboard asks of the host.
type dashboardBackend struct{ h *Host }

var _ dashboard.Backend = dashboardBackend{}

func (b dashboardBackend) Functions() []dashboard.Function {
	out := make([]dashboard.Function, 0, len(b.h.m.Order))
	for _, name := range b.h.m.Order {
		f := b.h.m.Functions[name]
		v := b.h.functionView(f)
		df := dashboard.Function{
			Name: v.Name, Description: v.Description, HandlerKind: v.HandlerKind, Handler: v.Handler,
			Timeout: f.Timeout, MaxAttempts: f.Retry.MaxAttempts, Concurrency: v.Concurrency, Then: v.Then,
			OnFailure: v.OnFailure,
		}
		for _, t := range v.Triggers {
			df.Triggers = append(df.Triggers, dashboard.Trigger{Kind: t.Kind, Summary: t.Summary, NextFire: t.NextFire})
		}
		out = append(out, df)
	}
	return out
}

func (b dashboardBackend) Queues() map[string][]string { return b.h.rt.Queues() }

func (b dashboardBackend) Servers(ctx context.Context) (dashboard.Servers, error) {
	views, err := b.h.serverViews(ctx)
	if err != nil {
		return dashboard.Servers{}, err
	}
	out := dashboard.Servers{Lease: b.h.rt.Lease(), RescueWithin: b.h.rt.RescueWithin()}
	for _, v := range views {
		out.Items = append(out.Items, dashboard.Server{
			ID: v.ID, Hostname: v.Hostname, PID: v.PID, Version: v.Version, Workers: v.Workers, InFlight: v.InFlight,
			StartedAt: v.StartedAt, HeartbeatAt: v.Heartbeat, Self: v.Self, Leader: v.Leader, Alive: v.Alive,
		})
	}
	return out, nil
}

func (b dashboardBackend) Invoke(ctx context.Context, function string, data json.RawMessage) (string, error) {
	res, err := b.h.rt.Submit(ctx, fnhost.Submission{
		Function: function, Trigger: "api", Event: fnhost.NewEvent("fnhost/dashboard", "fnhost.invoke", "", data),
	})
	if err != nil {
		return "", err
	}
	if len(res) != 1 {
		return "", fmt.Errorf("submit returned %d results", len(res))
	}
	return res[0].ID, nil
}

func (b dashboardBackend) Retry(ctx context.Context, id string) (*fnhost.Invocation, error) {
	return b.h.rt.Retry(ctx, id)
}

func (b dashboardBackend) Cancel(ctx context.Context, id string) (*fnhost.Invocation, error) {
	return b.h.rt.Cancel(ctx, id)
}
