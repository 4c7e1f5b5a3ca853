package s3

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/fnhost/fnhost/manifest"
)

// TargetARN is the ARN of MinIO's webhook target with id.
func TargetARN(id string) string { return "arn:minio:sqs::" + id + ":webhook" }

// ServerSettings are the environment variables that give a MinIO server the webhook
// target id, sending to endpoint (the host's WebhookPath) with token, and keeping
// undelivered events in queueDir while fnhost is away. MinIO takes the target's ID from
// the variables' suffix as it is written: the case matters.
func ServerSettings(id, endpoint, token, queueDir string) []string {
	up := id
	out := []string{
		"MINIO_NOTIFY_WEBHOOK_ENABLE_" + up + "=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_" + up + "=" + endpoint,
	}
	if token != "" {
		out = append(out, "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_"+up+"="+token)
	}
	if queueDir != "" {
		out = append(out, "MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_"+up+"="+queueDir)
	}
	return out
}

// NotificationPlan is the bucket notification that serves the s3 triggers of one bucket
// through one MinIO webhook target.
type NotificationPlan struct {
	Bucket, Target string
	Events         []string
	Prefix, Suffix string
}

// PlanNotification merges the triggers of one bucket into one notification: the union
// of their events (removals always, so that a key uploaded again after its deletion
// runs again), and the longest prefix and suffix they share, since MinIO refuses
// overlapping rules for one target. Each trigger filters the rest itself.
func PlanNotification(target string, trigs []*manifest.S3Trigger) NotificationPlan {
	p := NotificationPlan{Bucket: trigs[0].Bucket, Target: target, Prefix: trigs[0].Prefix, Suffix: trigs[0].Suffix}
	events := []string{"s3:ObjectRemoved:*"}
	for _, t := range trigs {
		p.Prefix = commonPrefix(p.Prefix, t.Prefix)
		p.Suffix = commonSuffix(p.Suffix, t.Suffix)
		for _, e := range t.Events {
			switch e {
			case "created":
				events = append(events, "s3:ObjectCreated:*")
			case "removed":
			default:
				events = append(events, e)
			}
		}
	}
	slices.Sort(events)
	p.Events = slices.Compact(events)
	// A wildcard covers the names of its family.
	var out []string
	for _, e := range p.Events {
		fam, _, _ := strings.Cut(strings.TrimPrefix(e, "s3:"), ":")
		if !strings.HasSuffix(e, ":*") && slices.Contains(p.Events, "s3:"+fam+":*") {
			continue
		}
		out = append(out, e)
	}
	p.Events = out
	return p
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

func commonSuffix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return a[len(a)-n:]
}

// ensureNotification makes the bucket of trigs send the events they watch to MinIO's
// webhook target: it replaces the bucket's rules for that target and keeps the others.
// conn says which server and credentials to use.
func ensureNotification(ctx context.Context, conn *manifest.S3Trigger, target string, trigs []*manifest.S3Trigger) error {
	plan := PlanNotification(target, trigs)
	return ApplyNotification(ctx, conn, plan)
}

// ApplyNotification writes plan into the bucket's notification configuration, unless
// it is there already.
func ApplyNotification(ctx context.Context, conn *manifest.S3Trigger, plan NotificationPlan) error {
	mc, err := newMinioClient(conn)
	if err != nil {
		return err
	}
	arn, err := notification.NewArnFromString(TargetARN(plan.Target))
	if err != nil {
		return err
	}
	cur, err := mc.GetBucketNotification(ctx, plan.Bucket)
	if err != nil {
		return fmt.Errorf("read the notification configuration of bucket %q: %w", plan.Bucket, err)
	}
	events := make([]notification.EventType, len(plan.Events))
	for i, e := range plan.Events {
		events[i] = notification.EventType(e)
	}
	for _, q := range cur.QueueConfigs {
		if q.Arn == arn && q.Equal(events, plan.Prefix, plan.Suffix) {
			return nil
		}
	}
	cur.RemoveQueueByArn(arn)
	cfg := notification.NewConfig(arn)
	cfg.AddEvents(events...)
	if plan.Prefix != "" {
		cfg.AddFilterPrefix(plan.Prefix)
	}
	if plan.Suffix != "" {
		cfg.AddFilterSuffix(plan.Suffix)
	}
	cur.AddQueue(cfg)
	if err := mc.SetBucketNotification(ctx, plan.Bucket, cur); err != nil {
		if strings.Contains(err.Error(), "ARN") || strings.Contains(err.Error(), "arn") {
			return fmt.Errorf("set the notification of bucket %q: %w (does the MinIO server have the webhook target %q? start it with %s)",
				plan.Bucket, err, plan.Target, strings.Join(ServerSettings(plan.Target, "http://<fnhost>"+WebhookPath, "<token>", "<dir>"), " "))
		}
		return fmt.Errorf("set the notification of bucket %q: %w", plan.Bucket, err)
	}
	return nil
}

// EnsureBucket creates conn's bucket unless it exists, and reports whether it did.
func EnsureBucket(ctx context.Context, conn *manifest.S3Trigger) (bool, error) {
	mc, err := newMinioClient(conn)
	if err != nil {
		return false, err
	}
	ok, err := mc.BucketExists(ctx, conn.Bucket)
	if err != nil {
		return false, fmt.Errorf("bucket %q: %w", conn.Bucket, err)
	}
	if ok {
		return false, nil
	}
	if err := mc.MakeBucket(ctx, conn.Bucket, minio.MakeBucketOptions{Region: conn.Region}); err != nil {
		return false, fmt.Errorf("create bucket %q: %w", conn.Bucket, err)
	}
	return true, nil
}
