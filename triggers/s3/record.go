package s3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// Record is one S3 event record in the shape AWS documents (event structure 2.x), the
// data of every invocation of the s3 trigger. Unlike AWS, S3.Object.Key is always the
// object's key itself, decoded: AWS and MinIO send it URL-encoded, listing returns it as
// is, and a handler should not have to know which one it got.
type Record struct {
	EventVersion string `json:"eventVersion"`
	// EventSource is "aws:s3", "minio:s3" (whatever the server sends), or "fnhost:list"
	// for an object found by listing the bucket rather than by a notification.
	EventSource string `json:"eventSource"`
	AWSRegion   string `json:"awsRegion"`
	EventTime   string `json:"eventTime"`
	// EventName is the AWS form, without the "s3:" prefix MinIO adds:
	// "ObjectCreated:Put", "ObjectRemoved:Delete", ...
	EventName    string    `json:"eventName"`
	UserIdentity *Identity `json:"userIdentity,omitempty"`
	S3           Entity    `json:"s3"`
}

// Identity is the principal that caused the event.
type Identity struct {
	PrincipalID string `json:"principalId"`
}

// Entity is the record's s3 part: the bucket and the object.
type Entity struct {
	SchemaVersion   string `json:"s3SchemaVersion,omitempty"`
	ConfigurationID string `json:"configurationId,omitempty"`
	Bucket          Bucket `json:"bucket"`
	Object          Object `json:"object"`
}

// Bucket names the bucket of a record.
type Bucket struct {
	Name string `json:"name"`
	ARN  string `json:"arn,omitempty"`
}

// Object is the object of a record. ETag has no quotes; Size is absent from removals.
type Object struct {
	Key         string `json:"key"`
	Size        int64  `json:"size,omitempty"`
	ETag        string `json:"eTag,omitempty"`
	VersionID   string `json:"versionId,omitempty"`
	Sequencer   string `json:"sequencer,omitempty"`
	ContentType string `json:"contentType,omitempty"`
}

// The families of event names.
const (
	familyCreated = "created"
	familyRemoved = "removed"
	familyOther   = "other"
)

// family tells what the record means for the object: created (a new version exists),
// removed (it no longer does: deletes and delete markers), or other (accessed,
// restored, replicated, tagged... which say nothing about the object's content).
func (r *Record) family() string {
	switch {
	case r.EventName == "ObjectRemoved:NoOP":
		// MinIO's event for the delete of a key that did not exist: nothing changed.
		return familyOther
	case strings.HasPrefix(r.EventName, "ObjectCreated:"):
		return familyCreated
	case strings.HasPrefix(r.EventName, "ObjectRemoved:"), r.EventName == "LifecycleExpiration:Delete",
		r.EventName == "LifecycleExpiration:DeleteMarkerCreated":
		return familyRemoved
	}
	return familyOther
}

// keyEncoding says how a source writes object keys into its records.
type keyEncoding int

const (
	// keyQueryEscaped keys are form-URL-encoded, "+" standing for a space: AWS S3 and
	// MinIO notifications.
	keyQueryEscaped keyEncoding = iota
	// keyRaw keys are the keys themselves: MinIO's listen stream, versitygw, Ceph.
	keyRaw
	// keyBySource decodes the keys of MinIO's records ("eventSource": "minio:s3") and
	// takes the others as they are: what a webhook receives, since AWS itself never
	// posts to one.
	keyBySource
)

// wireRecord is a record as servers send it, before the key is decoded.
type wireRecord struct {
	EventVersion string    `json:"eventVersion"`
	EventSource  string    `json:"eventSource"`
	AWSRegion    string    `json:"awsRegion"`
	EventTime    string    `json:"eventTime"`
	EventName    string    `json:"eventName"`
	UserIdentity *Identity `json:"userIdentity,omitempty"`
	S3           struct {
		SchemaVersion   string `json:"s3SchemaVersion"`
		ConfigurationID string `json:"configurationId"`
		Bucket          Bucket `json:"bucket"`
		Object          struct {
			Key         string      `json:"key"`
			Size        json.Number `json:"size"`
			ETag        string      `json:"eTag"`
			VersionID   string      `json:"versionId"`
			Sequencer   string      `json:"sequencer"`
			ContentType string      `json:"contentType"`
		} `json:"object"`
	} `json:"s3"`
}

// envelope is every form a bucket notification comes in: the plain
// {"Records": [...]} of S3, MinIO and versitygw (MinIO adds EventName and Key), an SNS
// envelope whose Message holds that document (S3 → SNS → SQS), and the s3:TestEvent S3
// sends when a notification is configured.
type envelope struct {
	Records []wireRecord `json:"Records"`
	// SNS envelope
	Type    string `json:"Type"`
	Message string `json:"Message"`
	// s3:TestEvent
	Event string `json:"Event"`
}

// errNotNotification is the error for a body that is JSON but no bucket notification.
var errNotNotification = errors.New("not an S3 bucket notification: want a JSON object with Records (or an SNS envelope of one)")

// parseNotification decodes the records of one notification body. A test event, or a
// notification without records, yields none and no error.
func parseNotification(body []byte, enc keyEncoding) ([]Record, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, errNotNotification
	}
	var n envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return nil, fmt.Errorf("not an S3 bucket notification: %v", err)
	}
	if n.Type == "Notification" && n.Message != "" && n.Records == nil {
		return parseNotification([]byte(n.Message), enc)
	}
	if n.Records == nil {
		if n.Event == "s3:TestEvent" {
			return nil, nil
		}
		return nil, errNotNotification
	}
	out := make([]Record, 0, len(n.Records))
	for i, w := range n.Records {
		r, err := w.record(enc)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// record checks and decodes a wire record.
func (w *wireRecord) record(enc keyEncoding) (Record, error) {
	if w.EventName == "" {
		return Record{}, errors.New("eventName is missing")
	}
	if w.S3.Bucket.Name == "" {
		return Record{}, errors.New("s3.bucket.name is missing")
	}
	if enc == keyBySource {
		enc = keyRaw
		if w.EventSource == "minio:s3" {
			enc = keyQueryEscaped
		}
	}
	key, err := decodeKey(w.S3.Object.Key, enc)
	if err != nil {
		return Record{}, err
	}
	var size int64
	if w.S3.Object.Size != "" {
		size, err = w.S3.Object.Size.Int64()
		if err != nil || size < 0 {
			return Record{}, fmt.Errorf("s3.object.size: not a size: %s", w.S3.Object.Size)
		}
	}
	r := Record{
		EventVersion: w.EventVersion,
		EventSource:  w.EventSource,
		AWSRegion:    w.AWSRegion,
		EventTime:    w.EventTime,
		EventName:    strings.TrimPrefix(w.EventName, "s3:"),
		UserIdentity: w.UserIdentity,
		S3: Entity{
			SchemaVersion:   w.S3.SchemaVersion,
			ConfigurationID: w.S3.ConfigurationID,
			Bucket:          w.S3.Bucket,
			Object: Object{
				Key:         key,
				Size:        size,
				ETag:        cleanETag(w.S3.Object.ETag),
				VersionID:   w.S3.Object.VersionID,
				Sequencer:   w.S3.Object.Sequencer,
				ContentType: w.S3.Object.ContentType,
			},
		},
	}
	if r.S3.Object.VersionID == "null" {
		r.S3.Object.VersionID = ""
	}
	return r, nil
}

// decodeKey turns a key as a source wrote it into the key itself.
func decodeKey(s string, enc keyEncoding) (string, error) {
	key := s
	if enc == keyQueryEscaped {
		k, err := url.QueryUnescape(s)
		if err != nil {
			return "", fmt.Errorf("s3.object.key %q is not URL-encoded: %v", s, err)
		}
		key = k
	}
	if key == "" {
		return "", errors.New("s3.object.key is missing")
	}
	if !utf8.ValidString(key) {
		return "", fmt.Errorf("s3.object.key %q is not valid UTF-8", s)
	}
	return key, nil
}

// cleanETag drops the quotes that listings and headers put around an ETag.
func cleanETag(s string) string {
	return strings.Trim(s, `"`)
}

// listedRecord is the record of an object found by listing: created, with the time it
// was last modified.
func listedRecord(region, bucket, key string, size int64, etag string, modified time.Time) Record {
	r := fromListing(region, bucket, "ObjectCreated:Put", modified)
	r.S3.Object = Object{Key: key, Size: size, ETag: cleanETag(etag)}
	return r
}

// removedRecord is the record of an object that listing no longer finds.
func removedRecord(region, bucket, key string, now time.Time) Record {
	r := fromListing(region, bucket, "ObjectRemoved:Delete", now)
	r.S3.Object = Object{Key: key}
	return r
}

// fromListing is the part of a record that a listing knows.
func fromListing(region, bucket, event string, at time.Time) Record {
	return Record{
		EventVersion: "2.1",
		EventSource:  "fnhost:list",
		AWSRegion:    region,
		EventTime:    at.UTC().Format("2006-01-02T15:04:05.000Z"),
		EventName:    event,
		S3: Entity{
			SchemaVersion: "1.0",
			Bucket:        Bucket{Name: bucket, ARN: "arn:aws:s3:::" + bucket},
		},
	}
}

// filter is what a trigger watches: a bucket, a key prefix and suffix, and event names.
type filter struct {
	bucket, prefix, suffix string
	// created and removed: the families named by "created" and "removed".
	created, removed bool
	// names are raw event names without "s3:", possibly ending in "*".
	names []string
}

func newFilter(bucket, prefix, suffix string, events []string) filter {
	f := filter{bucket: bucket, prefix: prefix, suffix: suffix}
	for _, e := range events {
		switch e {
		case "created":
			f.created = true
		case "removed":
			f.removed = true
		default:
			f.names = append(f.names, strings.TrimPrefix(e, "s3:"))
		}
	}
	return f
}

// object reports whether a key in bucket is watched.
func (f *filter) object(bucket, key string) bool {
	return bucket == f.bucket && strings.HasPrefix(key, f.prefix) && strings.HasSuffix(key, f.suffix)
}

// event reports whether an event name is watched.
func (f *filter) event(name string) bool {
	switch {
	case f.created && strings.HasPrefix(name, "ObjectCreated:"):
		return true
	case f.removed && name != "ObjectRemoved:NoOP" && (strings.HasPrefix(name, "ObjectRemoved:") || strings.HasPrefix(name, "LifecycleExpiration:")):
		return true
	}
	for _, n := range f.names {
		if ok, _ := path.Match(n, name); ok || n == name {
			return true
		}
	}
	return false
}

// listedCreated reports whether objects found by listing are watched: a listing cannot
// tell how an object was created, so any filter on ObjectCreated takes them.
func (f *filter) listedCreated() bool {
	if f.created {
		return true
	}
	for _, n := range f.names {
		if strings.HasPrefix(n, "ObjectCreated:") || n == "ObjectCreated" {
			return true
		}
	}
	return false
}

// listedRemoved reports whether removals found by listing are watched.
func (f *filter) listedRemoved() bool {
	if f.removed {
		return true
	}
	for _, n := range f.names {
		if strings.HasPrefix(n, "ObjectRemoved:") {
			return true
		}
	}
	return false
}
