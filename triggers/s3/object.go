package s3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
)

// ObjectRef is the object an s3 invocation is about, with a client for its bucket.
// Builtin handlers get it with ObjectFrom.
type ObjectRef struct {
	Bucket    string
	Key       string
	ETag      string
	VersionID string
	// Client is an S3 client for the trigger's endpoint and credentials.
	Client *awss3.Client
}

// Open streams the object's content: the version the event names when it has a
// version id, otherwise the current object as long as its ETag is still the event's.
// An object that is gone, or was replaced since, gives an error wrapped with
// fnhost.Permanent: the newer version has an invocation of its own.
func (o *ObjectRef) Open(ctx context.Context) (io.ReadCloser, error) {
	in := &awss3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Key)}
	if o.VersionID != "" {
		in.VersionId = aws.String(o.VersionID)
	} else if o.ETag != "" {
		in.IfMatch = aws.String(`"` + o.ETag + `"`)
	}
	out, err := o.Client.GetObject(ctx, in)
	if err != nil {
		var re interface{ HTTPStatusCode() int }
		if errors.As(err, &re) {
			switch re.HTTPStatusCode() {
			case http.StatusNotFound:
				return nil, fnhost.Permanent(fmt.Errorf("s3: object %s/%s is gone: %w", o.Bucket, o.Key, err))
			case http.StatusPreconditionFailed:
				return nil, fnhost.Permanent(fmt.Errorf("s3: object %s/%s was replaced after this event (its newer version has an invocation of its own): %w", o.Bucket, o.Key, err))
			}
		}
		return nil, fmt.Errorf("s3: get %s/%s: %w", o.Bucket, o.Key, err)
	}
	return out.Body, nil
}

type objectKey struct{}

// ObjectFrom returns the object of the s3 invocation running in ctx.
func ObjectFrom(ctx context.Context) (*ObjectRef, bool) {
	o, ok := ctx.Value(objectKey{}).(*ObjectRef)
	return o, ok
}

// objectHandler puts the object of an s3 invocation in the attempt's context and, with
// download, streams it to a local file first.
type objectHandler struct {
	next     fnhost.Handler
	cfg      *manifest.S3Trigger
	once     sync.Once
	client   *awss3.Client
	clientEr error
}

func wrapHandler(fn *manifest.Function, tr manifest.Trigger, h fnhost.Handler) (fnhost.Handler, error) {
	if tr.S3 == nil {
		return h, nil
	}
	return &objectHandler{next: h, cfg: tr.S3}, nil
}

func (h *objectHandler) s3Client(ctx context.Context) (*awss3.Client, error) {
	h.once.Do(func() {
		ac, err := awsConfig(ctx, h.cfg)
		if err != nil {
			h.clientEr = err
			return
		}
		h.client = newS3Client(ac, h.cfg)
	})
	return h.client, h.clientEr
}

func (h *objectHandler) Invoke(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	if _, done := ObjectFrom(ctx); done || !strings.HasPrefix(ev.Type, "fnhost.s3.") {
		return h.next.Invoke(ctx, ev)
	}
	var r Record
	if err := json.Unmarshal(ev.Data, &r); err != nil || r.S3.Bucket.Name != h.cfg.Bucket || r.S3.Object.Key == "" {
		return h.next.Invoke(ctx, ev)
	}
	client, err := h.s3Client(ctx)
	if err != nil {
		return fnhost.Result{}, err
	}
	obj := &ObjectRef{Bucket: r.S3.Bucket.Name, Key: r.S3.Object.Key, ETag: r.S3.Object.ETag, VersionID: r.S3.Object.VersionID, Client: client}
	ctx = context.WithValue(ctx, objectKey{}, obj)
	if !h.cfg.Download || r.family() == familyRemoved {
		return h.next.Invoke(ctx, ev)
	}
	dir, err := os.MkdirTemp("", "fnhost-s3-")
	if err != nil {
		return fnhost.Result{}, fmt.Errorf("s3: download: %w", err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, localName(obj.Key))
	if err := download(ctx, obj, file); err != nil {
		return fnhost.Result{}, err
	}
	fnhost.Logf(ctx, "fnhost: downloaded s3://%s/%s to %s", obj.Bucket, obj.Key, file)
	return h.next.Invoke(fnhost.WithInputFile(ctx, file), ev)
}

// localName is the name of the local copy of key: its base name when that is a usable
// file name (tools pick formats by extension), "object" otherwise.
func localName(key string) string {
	base := path.Base(key)
	if base == "." || base == "/" || base == ".." || strings.ContainsAny(base, "\x00") || len(base) > 200 {
		return "object"
	}
	return base
}

// download streams obj into file.
func download(ctx context.Context, obj *ObjectRef, file string) error {
	body, err := obj.Open(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("s3: download: %w", err)
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return fmt.Errorf("s3: download s3://%s/%s: %w", obj.Bucket, obj.Key, err)
	}
	return f.Close()
}
