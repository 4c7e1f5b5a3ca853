package s3

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQS long polling: the longest wait SQS allows, and the most messages per receive.
const (
	sqsWait     = 20
	sqsMaxBatch = 10
)

// newSQSClient is the SQS client for queueURL: on AWS the queue's region comes from its
// host (sqs.<region>.amazonaws.com); any other host (an SQS-compatible server) is the
// endpoint itself.
func newSQSClient(ac aws.Config, queueURL string) *sqs.Client {
	return sqs.NewFromConfig(ac, func(o *sqs.Options) {
		u, err := url.Parse(queueURL)
		if err != nil {
			return
		}
		host := u.Hostname()
		if region, ok := awsQueueRegion(host); ok {
			o.Region = region
			return
		}
		o.BaseEndpoint = aws.String(u.Scheme + "://" + u.Host)
	})
}

// awsQueueRegion tells whether host is an AWS SQS endpoint, and its region:
// sqs.<region>.amazonaws.com(.cn), sqs.<region>.api.aws (dual stack) and the legacy
// <region>.queue.amazonaws.com.
func awsQueueRegion(host string) (string, bool) {
	parts := strings.Split(host, ".")
	switch {
	case len(parts) >= 4 && parts[0] == "sqs" && (strings.HasSuffix(host, ".amazonaws.com") || strings.HasSuffix(host, ".amazonaws.com.cn")):
		return parts[1], true
	case len(parts) == 4 && parts[0] == "sqs" && strings.HasSuffix(host, ".api.aws"):
		return parts[1], true
	case len(parts) == 4 && parts[1] == "queue" && strings.HasSuffix(host, ".amazonaws.com"):
		return parts[0], true
	}
	return "", false
}

// runSQS reads S3 notifications from the trigger's SQS queue: long polling, one batch
// at a time; a message is deleted only once its records are persisted (or it is an
// s3:TestEvent). A message that is no notification is left in the queue, where its
// redrive policy moves it to a dead-letter queue after its receive count; nothing is
// deleted unread. The bucket is listed at start and every reconcile as well.
func (t *Trigger) runSQS(ctx context.Context, ac aws.Config) error {
	client := newSQSClient(ac, t.cfg.QueueURL)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.reconcileLoop(ctx, nil)
	}()
	defer func() { <-done }()

	delay := time.Duration(0)
	for ctx.Err() == nil {
		err := t.receiveSQS(ctx, client)
		if err == nil {
			delay = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		delay = backoff(delay, time.Second, time.Minute)
		t.log.Warn("s3: receiving from SQS failed; trying again", "queue", t.cfg.QueueURL, "in", delay, "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	return nil
}

// receiveSQS receives one batch, submits its records and deletes what was persisted.
func (t *Trigger) receiveSQS(ctx context.Context, client *sqs.Client) error {
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(t.cfg.QueueURL),
		MaxNumberOfMessages: sqsMaxBatch,
		WaitTimeSeconds:     sqsWait,
	})
	if err != nil {
		return err
	}
	var del []sqstypes.DeleteMessageBatchRequestEntry
	for i, m := range out.Messages {
		recs, err := parseNotification([]byte(aws.ToString(m.Body)), keyQueryEscaped)
		if err != nil {
			t.log.Warn("s3: an SQS message is no S3 notification; it stays in the queue for its redrive policy",
				"message_id", aws.ToString(m.MessageId), "error", err)
			continue
		}
		if _, err := t.accept(ctx, "sqs", recs, false); err != nil {
			// Not deleted: SQS delivers it again after its visibility timeout.
			t.log.Error("s3: could not persist an SQS notification; it will be received again", "message_id", aws.ToString(m.MessageId), "error", err)
			continue
		}
		del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
	}
	if len(del) == 0 {
		return nil
	}
	res, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(t.cfg.QueueURL), Entries: del})
	if err != nil {
		// The invocations are persisted; the messages come back and are duplicates.
		return fmt.Errorf("delete %d persisted messages: %w", len(del), err)
	}
	for _, f := range res.Failed {
		t.log.Warn("s3: SQS did not delete a persisted message; it will come back as a duplicate", "id", aws.ToString(f.Id), "code", aws.ToString(f.Code), "error", aws.ToString(f.Message))
	}
	return nil
}
