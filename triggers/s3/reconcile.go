package s3

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// pageSize is how many keys one listing page, and one receipts lookup, covers.
const pageSize = 1000

// reconciler lists the bucket and submits every watched object version that has no
// receipt: the safety net of the push modes and the whole of the poll mode.
//
// Receipts are its checkpoint, one per object, in the store: a listing cannot be
// resumed "since" a time (S3 lists in key order, and servers that replicate keep old
// modification times), so each pass lists the prefix and compares. To keep passes cheap
// it remembers the ETag it last confirmed for each key: an unchanged object costs
// nothing but its line in the listing; only new and changed keys are looked up in the
// store. The first pass after start compares every listed key with the store.
type reconciler struct {
	t *Trigger
	// mu makes passes one at a time.
	mu sync.Mutex
	// known maps each key of the last pass to the ETag confirmed for it; nil before the
	// first pass succeeded.
	known map[string]string
}

func newReconciler(t *Trigger) *reconciler { return &reconciler{t: t} }

// pass lists the bucket once and submits what it finds missing.
func (r *reconciler) pass(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.t
	created := t.filter.listedCreated()
	cur := make(map[string]string, len(r.known))
	var pending []candidate
	var failed error
	in := &awss3.ListObjectsV2Input{Bucket: aws.String(t.cfg.Bucket), MaxKeys: aws.Int32(pageSize)}
	if t.cfg.Prefix != "" {
		in.Prefix = aws.String(t.cfg.Prefix)
	}
	pages := awss3.NewListObjectsV2Paginator(t.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !t.filter.object(t.cfg.Bucket, key) {
				continue
			}
			etag := cleanETag(aws.ToString(o.ETag))
			if !created {
				cur[key] = etag
				continue
			}
			if r.known != nil && r.known[key] == etag {
				cur[key] = etag
				continue
			}
			pending = append(pending, candidate{key: key, etag: etag, size: aws.ToInt64(o.Size), modified: aws.ToTime(o.LastModified)})
		}
		if len(pending) >= pageSize || !pages.HasMorePages() {
			if err := r.submitCreated(ctx, pending, cur); err != nil {
				// Keep listing: the failed keys stay out of cur and are tried next pass.
				failed = err
			}
			pending = pending[:0]
		}
	}
	if len(pending) > 0 {
		if err := r.submitCreated(ctx, pending, cur); err != nil {
			failed = err
		}
	}
	if err := r.removals(ctx, cur); err != nil {
		failed = err
	}
	r.known = cur
	return failed
}

// candidate is a listed object whose ETag is not the one last confirmed.
type candidate struct {
	key, etag string
	size      int64
	modified  time.Time
}

// submitCreated submits the candidates whose receipt does not hold their ETag, and
// records in cur the keys it confirmed.
func (r *reconciler) submitCreated(ctx context.Context, cands []candidate, cur map[string]string) error {
	if len(cands) == 0 {
		return nil
	}
	t := r.t
	keys := make([]string, len(cands))
	for i, c := range cands {
		keys[i] = t.cfg.Bucket + "/" + c.key
	}
	have, err := t.env.Store.Receipts(ctx, t.fn, keys)
	if err != nil {
		return err
	}
	var recs []Record
	for i, c := range cands {
		if have[keys[i]] == c.etag {
			cur[c.key] = c.etag
			eventsTotal.WithLabelValues(t.fn, "list", "duplicate").Inc()
			continue
		}
		recs = append(recs, listedRecord(t.cfg.Region, t.cfg.Bucket, c.key, c.size, c.etag, c.modified))
	}
	if len(recs) > 0 {
		if _, err := t.accept(ctx, "list", recs, true); err != nil {
			return err
		}
		for _, rec := range recs {
			cur[rec.S3.Object.Key] = rec.S3.Object.ETag
		}
	}
	return nil
}

// removals finds the watched objects that are gone: on the first pass, the receipts
// under the prefix that the listing did not show; afterwards, the keys of the last pass
// missing from this one. Each is checked with a HEAD (it may have been created after
// the listing went past it), then submitted as removed when removals are watched, or
// its receipt forgotten, so that the next upload of the key runs again.
func (r *reconciler) removals(ctx context.Context, cur map[string]string) error {
	t := r.t
	var gone []string
	if r.known == nil {
		after := ""
		prefix := t.cfg.Bucket + "/" + t.cfg.Prefix
		for {
			keys, err := t.env.Store.ReceiptKeys(ctx, t.fn, prefix, after, pageSize)
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				break
			}
			var check []string
			for _, k := range keys {
				obj := k[len(t.cfg.Bucket)+1:]
				if _, ok := cur[obj]; !ok && t.filter.object(t.cfg.Bucket, obj) {
					check = append(check, k)
				}
			}
			if len(check) > 0 {
				vers, err := t.env.Store.Receipts(ctx, t.fn, check)
				if err != nil {
					return err
				}
				for _, k := range check {
					if v, ok := vers[k]; ok && v != removedVersion {
						gone = append(gone, k[len(t.cfg.Bucket)+1:])
					}
				}
			}
			after = keys[len(keys)-1]
			if len(keys) < pageSize {
				break
			}
		}
	} else {
		for k := range r.known {
			if _, ok := cur[k]; !ok {
				gone = append(gone, k)
			}
		}
	}
	if len(gone) == 0 {
		return nil
	}
	var recs []Record
	now := time.Now()
	for _, k := range gone {
		exists, err := t.head(ctx, k)
		if err != nil {
			return err
		}
		if !exists {
			recs = append(recs, removedRecord(t.cfg.Region, t.cfg.Bucket, k, now))
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if t.filter.listedRemoved() {
		_, err := t.accept(ctx, "list", recs, true)
		return err
	}
	keys := make([]string, len(recs))
	for i, rec := range recs {
		keys[i] = t.cfg.Bucket + "/" + rec.S3.Object.Key
	}
	return t.env.Store.ForgetReceipts(ctx, t.fn, keys)
}
