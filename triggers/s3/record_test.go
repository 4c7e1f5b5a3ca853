package s3

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/fnhost/fnhost/manifest"
)

// minioBody is a MinIO webhook notification as the server sends it (one record; the
// key URL-encoded the way MinIO encodes it: url.QueryEscape).
func minioBody(event, key, etag string) string {
	obj := `"key": "` + url.QueryEscape(key) + `", "sequencer": "18EB5A32D5DB6EDC"`
	if etag != "" {
		obj += `, "size": 13, "eTag": "` + etag + `", "contentType": "application/octet-stream", "userMetadata": {"content-type": "application/octet-stream"}`
	}
	return `{"EventName": "s3:` + event + `", "Key": ` + jsonString("probe/"+key) + `, "Records": [{
	  "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventTime": "2026-11-25T17:34:10.822Z",
	  "eventName": "s3:` + event + `", "userIdentity": {"principalId": "probeadmin"},
	  "requestParameters": {"principalId": "probeadmin", "region": "", "sourceIPAddress": "127.0.0.1"},
	  "responseElements": {"x-amz-request-id": "18EB5A32D5D19270"},
	  "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
	         "bucket": {"name": "probe", "ownerIdentity": {"principalId": "probeadmin"}, "arn": "arn:aws:s3:::probe"},
	         "object": {` + obj + `}},
	  "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO"}}]}`
}

// awsEscape encodes a key the way AWS S3 writes it into notifications: form encoding
// with the slashes kept.
func awsEscape(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
}

var oddKeys = []string{
	"a b.txt", "a+b.txt", "ünï cödé/日本.txt", "dir/sub/x%20y.txt", "q?x=1&y#z.txt",
	"trailing space ", "emoji 🎉/x", "percent%", "tab\tin", "semi;colon,comma",
}

func TestMinIOKeysRoundTrip(t *testing.T) {
	for _, key := range oddKeys {
		recs, err := parseNotification([]byte(minioBody("ObjectCreated:Put", key, "235125f435eb709517c28470ecb9cfd8")), keyQueryEscaped)
		if err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		if len(recs) != 1 || recs[0].S3.Object.Key != key {
			t.Fatalf("%q: got %+v", key, recs)
		}
		r := recs[0]
		if r.EventName != "ObjectCreated:Put" || r.S3.Bucket.Name != "probe" || r.S3.Object.ETag != "235125f435eb709517c28470ecb9cfd8" || r.S3.Object.Size != 13 || r.S3.Object.Sequencer == "" {
			t.Errorf("%q: record %+v", key, r)
		}
		if r.family() != familyCreated {
			t.Errorf("%q: family %s", key, r.family())
		}
	}
}

func TestAWSKeysRoundTrip(t *testing.T) {
	for _, key := range oddKeys {
		body := `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1","eventTime":"2026-01-01T00:00:00.000Z",
		  "eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"b","arn":"arn:aws:s3:::b"},
		  "object":{"key":"` + awsEscape(key) + `","size":1048576,"eTag":"\"0123-2\"","versionId":"3HL4kqtJlcpXroDTDmJ","sequencer":"0055AED6DCD90281E5"}}}]}`
		recs, err := parseNotification([]byte(body), keyQueryEscaped)
		if err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		if got := recs[0].S3.Object; got.Key != key || got.ETag != "0123-2" || got.VersionID != "3HL4kqtJlcpXroDTDmJ" || got.Size != 1048576 {
			t.Errorf("%q: object %+v", key, got)
		}
	}
}

func TestEnvelopes(t *testing.T) {
	inner := minioBody("ObjectRemoved:Delete", "x y", "")
	sns := `{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:eu-west-1:1:t","Message":` + jsonString(inner) + `}`
	recs, err := parseNotification([]byte(sns), keyQueryEscaped)
	if err != nil || len(recs) != 1 || recs[0].S3.Object.Key != "x y" || recs[0].family() != familyRemoved {
		t.Fatalf("SNS envelope: %+v, %v", recs, err)
	}
	test := `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}`
	if recs, err := parseNotification([]byte(test), keyQueryEscaped); err != nil || len(recs) != 0 {
		t.Errorf("test event: %+v, %v", recs, err)
	}
	if recs, err := parseNotification([]byte(`{"Records":[]}`), keyQueryEscaped); err != nil || len(recs) != 0 {
		t.Errorf("no records: %+v, %v", recs, err)
	}
}

func jsonString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

func TestBadNotifications(t *testing.T) {
	for name, body := range map[string]string{
		"empty":        ``,
		"not json":     `hello`,
		"array":        `[{"Records":[]}]`,
		"no records":   `{"foo": 1}`,
		"truncated":    `{"Records":[{"eventName":"s3:ObjectCreated:Put"`,
		"no bucket":    `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"object":{"key":"a"}}}]}`,
		"no key":       `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{}}}]}`,
		"no event":     `{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"a"}}}]}`,
		"bad escape":   `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%zz"}}}]}`,
		"bad utf8":     `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%ff"}}}]}`,
		"bad size":     `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a","size":-1}}}]}`,
		"size type":    `{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a","size":"x"}}}]}`,
		"records type": `{"Records":{"a":1}}`,
	} {
		if recs, err := parseNotification([]byte(body), keyQueryEscaped); err == nil {
			t.Errorf("%s: no error, records %+v", name, recs)
		}
	}
}

func TestFilter(t *testing.T) {
	f := newFilter("b", "in/", ".jpg", []string{"created"})
	for _, c := range []struct {
		bucket, key string
		want        bool
	}{
		{"b", "in/a.jpg", true}, {"b", "in/sub/a b.jpg", true}, {"b", "in/a.png", false},
		{"b", "out/a.jpg", false}, {"c", "in/a.jpg", false}, {"b", "in/.jpg", true},
	} {
		if got := f.object(c.bucket, c.key); got != c.want {
			t.Errorf("object(%q, %q) = %v", c.bucket, c.key, got)
		}
	}
	for name, want := range map[string]bool{
		"ObjectCreated:Put": true, "ObjectCreated:Copy": true, "ObjectRemoved:Delete": false, "ObjectAccessed:Get": false,
	} {
		if f.event(name) != want {
			t.Errorf("created filter, event(%s) != %v", name, want)
		}
	}
	raw := newFilter("b", "", "", []string{"s3:ObjectCreated:Copy", "s3:ObjectRemoved:*", "s3:ObjectAccessed:Get"})
	for name, want := range map[string]bool{
		"ObjectCreated:Put": false, "ObjectCreated:Copy": true, "ObjectRemoved:Delete": true,
		"ObjectRemoved:DeleteMarkerCreated": true, "ObjectAccessed:Get": true, "ObjectAccessed:Head": false,
	} {
		if raw.event(name) != want {
			t.Errorf("raw filter, event(%s) != %v", name, want)
		}
	}
	if !raw.listedCreated() || !raw.listedRemoved() {
		t.Error("a raw ObjectCreated filter takes listed objects; an ObjectRemoved one takes listed removals")
	}
	removed := newFilter("b", "", "", []string{"removed"})
	if removed.event("ObjectRemoved:NoOP") || (&Record{EventName: "ObjectRemoved:NoOP"}).family() != familyOther {
		t.Error("MinIO's NoOP removal (a delete of a key that did not exist) is no removal")
	}
	if removed.listedCreated() {
		t.Error("a removed-only filter does not take listed objects")
	}
}

func TestPlanNotification(t *testing.T) {
	p := PlanNotification("fnhost", []*manifest.S3Trigger{
		{Bucket: "b", Prefix: "img/raw/", Suffix: ".jpg", Events: []string{"created"}},
		{Bucket: "b", Prefix: "img/new/", Suffix: ".jpg", Events: []string{"s3:ObjectCreated:Put", "s3:ObjectAccessed:Get"}},
	})
	want := NotificationPlan{Bucket: "b", Target: "fnhost", Prefix: "img/", Suffix: ".jpg",
		Events: []string{"s3:ObjectAccessed:Get", "s3:ObjectCreated:*", "s3:ObjectRemoved:*"}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("plan = %+v\nwant %+v", p, want)
	}
	if got := ServerSettings("fnhost", "http://h:8080/hooks/s3", "tok", ""); !reflect.DeepEqual(got, []string{
		"MINIO_NOTIFY_WEBHOOK_ENABLE_fnhost=on", "MINIO_NOTIFY_WEBHOOK_ENDPOINT_fnhost=http://h:8080/hooks/s3", "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_fnhost=tok",
	}) {
		t.Errorf("settings = %q", got)
	}
}

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "abc": "abc", "": "", "Token abc": "Token abc"} {
		if got := bearer(h); got != want {
			t.Errorf("bearer(%q) = %q, want %q", h, got, want)
		}
	}
}

func TestLocalName(t *testing.T) {
	for key, want := range map[string]string{
		"a/b/photo 1.jpg": "photo 1.jpg", "x": "x", "dir/": "dir", "/": "object", "..": "object", "a/..": "object",
		strings.Repeat("n", 300): "object",
	} {
		if got := localName(key); got != want {
			t.Errorf("localName(%q) = %q, want %q", key, got, want)
		}
	}
}

// versityBody is a versitygw webhook notification: the key as it is, a quoted ETag,
// capitalised PrincipalId, a null versionId.
func versityBody(key string) string {
	return `{"Records":[{"eventVersion":"2.2","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-25T17:36:01Z",
	  "eventName":"s3:ObjectCreated:Put","userIdentity":{"PrincipalId":"vgwadmin"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},
	  "responseElements":{"x-amz-request-id":"","x-amz-id-2":""},
	  "s3":{"s3SchemaVersion":"1.0","configurationId":"webhook-global","bucket":{"name":"probe","ownerIdentity":{"PrincipalId":"vgwadmin"},"arn":"arn:aws:s3:::/probe/x"},
	  "object":{"key":` + jsonString(key) + `,"size":13,"eTag":"\"235125f435eb709517c28470ecb9cfd8\"","versionId":null,"sequencer":"1"}},
	  "glacierEventData":{"restoreEventData":{"lifecycleRestorationExpiryTime":"","lifecycleRestoreStorageClass":""}}}]}`
}

func TestWebhookKeysBySource(t *testing.T) {
	for _, key := range oddKeys {
		for name, body := range map[string]string{
			"minio":     minioBody("ObjectCreated:Put", key, "235125f435eb709517c28470ecb9cfd8"),
			"versitygw": versityBody(key),
		} {
			recs, err := parseNotification([]byte(body), keyBySource)
			if err != nil {
				t.Fatalf("%s %q: %v", name, key, err)
			}
			o := recs[0].S3.Object
			if o.Key != key || o.ETag != "235125f435eb709517c28470ecb9cfd8" || o.VersionID != "" {
				t.Errorf("%s %q: object %+v", name, key, o)
			}
			if recs[0].UserIdentity == nil || recs[0].UserIdentity.PrincipalID == "" {
				t.Errorf("%s: identity lost: %+v", name, recs[0].UserIdentity)
			}
		}
	}
	probe := `{"Bucket":"Test-Bucket","Event":"s3:TestEvent","Service":"S3","Time":"2026-11-25T17:36:00Z"}`
	if recs, err := parseNotification([]byte(probe), keyBySource); err != nil || len(recs) != 0 {
		t.Errorf("versitygw's start-up test event: %+v, %v", recs, err)
	}
}
