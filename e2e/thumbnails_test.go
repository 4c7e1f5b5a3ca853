package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/s3test"
)

// upload is an object the thumbnails test puts into the bucket "uploads", and what it
// expects of its invocation.
type upload struct {
	key  string
	body []byte
	// w and h are the thumbnail's expected size; 0 means the object is no image and its
	// invocation must fail at once.
	w, h int
	// redOverBlue says the image is redOverBlue, which its thumbnail must still be.
	redOverBlue bool
}

// TestExampleThumbnails runs examples/thumbnails the way its README does: MinIO with a
// webhook target sending to fnhost, the handler built with go build, `fnhost s3 setup
// --create-buckets`, `fnhost run`, then uploads. It also kills fnhost, uploads while it
// is down, and checks that the listing at the next start runs those uploads once.
func TestExampleThumbnails(t *testing.T) {
	p := example(t, "thumbnails", "functions.yaml")
	const token = "thumbnails-e2e-token"
	// No queue_dir, as in the README: MinIO sends each event once, and what fnhost
	// misses while it is down is found by its listing at start. With sync events an
	// upload returns only once its event was sent (or failed to be), so no event of an
	// upload made while fnhost is down can reach the next fnhost.
	srv := s3test.StartMinIO(t, s3test.MinIOOptions{
		Webhooks: map[string]s3test.Webhook{
			"fnhost": {Endpoint: "http://" + p.addr + "/hooks/s3", AuthToken: token, NoQueue: true},
		},
		Env: []string{"MINIO_API_SYNC_EVENTS=on"},
	})
	p.env = append(p.env,
		"S3_ENDPOINT="+srv.Endpoint,
		"MINIO_ROOT_USER="+srv.AccessKey,
		"MINIO_ROOT_PASSWORD="+srv.SecretKey,
		"FNHOST_S3_TOKEN="+token,
	)
	if out, err := exec.Command("go", "build", "-o", filepath.Join(p.dir, "bin", "thumb"), "../examples/thumbnails/thumb").CombinedOutput(); err != nil {
		t.Fatalf("build the thumb handler: %v\n%s", err, out)
	}
	out, err := p.cli("s3", "setup", "--create-buckets")
	if err != nil || !strings.Contains(out, `created bucket "uploads"`) || !strings.Contains(out, "(functions thumbnail): ok") {
		t.Fatalf("fnhost s3 setup --create-buckets: %v\n%s", err, out)
	}
	if strings.Contains(out, token) {
		t.Fatalf("fnhost s3 setup printed the token:\n%s", out)
	}
	p.start()

	sample, err := os.ReadFile("../examples/thumbnails/sample.png")
	if err != nil {
		t.Fatal(err)
	}
	ups := []upload{
		{key: "images/sample.png", body: sample, w: 256, h: 192}, // the README's upload
		{key: "images/my cat ünï.jpg", body: encodeImage(t, "jpeg", 800, 600, gradient), w: 256, h: 192},
		{key: "images/tall ☂ banner.png", body: encodeImage(t, "png", 300, 1000, redOverBlue), w: 77, h: 256, redOverBlue: true},
		{key: "images/small+icon.gif", body: encodeImage(t, "gif", 120, 80, gradient), w: 120, h: 80},
		{key: "images/notes ü.txt", body: []byte("this is no image\n")},
	}
	etags := map[string]string{}
	for _, u := range ups {
		etags[u.key] = srv.Put(t, "uploads", u.key, string(u.body))
	}
	// Outside the trigger's prefix: no invocation.
	srv.Put(t, "uploads", "other/cat.jpg", string(ups[0].body))
	done := waitThumbnails(t, p, ups)
	checkThumbnails(t, p, srv, ups, done, etags)

	// The README's way to look at a result.
	if out, err := p.cli("show", done["images/sample.png"].ID); err != nil || !strings.Contains(out, "s3://thumbnails/images/sample.png.png") {
		t.Fatalf("fnhost show: %v\n%s", err, out)
	}
	if out, err := p.cli("runs", "--state", "failed"); err != nil || !strings.Contains(out, "exit status 3") {
		t.Fatalf("fnhost runs --state failed: %v\n%s", err, out)
	}

	// fnhost dies; two images arrive while it is down. MinIO's events for them are lost
	// (no queue_dir), so only the listing at start can find them.
	p.kill()
	more := []upload{
		{key: "images/down ☂ wide.jpg", body: encodeImage(t, "jpeg", 1000, 250, gradient), w: 256, h: 64},
		{key: "images/down/exactly 256.png", body: encodeImage(t, "png", 256, 100, redOverBlue), w: 256, h: 100, redOverBlue: true},
	}
	for _, u := range more {
		etags[u.key] = srv.Put(t, "uploads", u.key, string(u.body))
	}
	p.start()
	all := append(ups, more...)
	done = waitThumbnails(t, p, all)
	checkThumbnails(t, p, srv, more, done, etags)
	// MinIO's events for them were lost, so it was the listing at start that submitted
	// both.
	var m map[string]float64
	eventually(t, 30*time.Second, "the listing at start to submit the two images", func() bool {
		m = s3Events(t, p)
		return m["list/submitted"] == float64(len(more))
	})
	if m["webhook/submitted"] != 0 {
		t.Fatalf("after the restart the webhook submitted %v invocations, want 0: %v", m["webhook/submitted"], m)
	}
	if n := len(p.all("function=thumbnail")); n != len(all) {
		t.Fatalf("%d invocations, want %d: one per uploaded object under images/", n, len(all))
	}
}

// waitThumbnails waits until every upload has exactly one finished invocation and
// returns them by key.
func waitThumbnails(t *testing.T, p *project, ups []upload) map[string]*fnhost.Invocation {
	t.Helper()
	var done map[string]*fnhost.Invocation
	eventually(t, 90*time.Second, "an invocation per upload, finished", func() bool {
		done = map[string]*fnhost.Invocation{}
		for _, inv := range p.all("function=thumbnail") {
			if inv.State != fnhost.StateSucceeded && inv.State != fnhost.StateFailed {
				return false
			}
			full := p.invocation(inv.ID)
			var ev fnhost.Event
			if err := json.Unmarshal(full.Event, &ev); err != nil {
				t.Fatalf("invocation %s: event %s: %v", inv.ID, full.Event, err)
			}
			key := strings.TrimPrefix(ev.Subject, "uploads/")
			if done[key] != nil {
				t.Fatalf("%s ran twice: invocations %s and %s", key, done[key].ID, inv.ID)
			}
			done[key] = full
		}
		return len(done) == len(ups)
	})
	for _, u := range ups {
		if done[u.key] == nil {
			t.Fatalf("no invocation for %s; got %v", u.key, keys(done))
		}
	}
	return done
}

func keys(m map[string]*fnhost.Invocation) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkThumbnails checks the invocations of ups and the thumbnails in the bucket.
func checkThumbnails(t *testing.T, p *project, srv *s3test.Server, ups []upload, done map[string]*fnhost.Invocation, etags map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range ups {
		inv := done[u.key]
		if u.w == 0 {
			if inv.State != fnhost.StateFailed || len(inv.Attempts) != 1 || inv.MaxAttempts < 2 {
				t.Fatalf("%s: %s after %d attempt(s) of %d, want failed at the first, without retry", u.key, inv.State, len(inv.Attempts), inv.MaxAttempts)
			}
			a := inv.Attempts[0]
			if !strings.Contains(a.Error, "exit status 3") || !strings.Contains(a.Log, "is not an image") {
				t.Fatalf("%s: attempt error %q, log:\n%s", u.key, a.Error, a.Log)
			}
			continue
		}
		if inv.State != fnhost.StateSucceeded || len(inv.Attempts) != 1 {
			t.Fatalf("%s: %s after %d attempt(s): %+v", u.key, inv.State, len(inv.Attempts), inv.Attempts)
		}
		var res struct {
			Thumbnail     string
			Width, Height int
		}
		if err := json.Unmarshal(inv.Output, &res); err != nil {
			t.Fatalf("%s: output %s: %v", u.key, inv.Output, err)
		}
		want := "s3://thumbnails/" + u.key + ".png"
		if res.Thumbnail != want || res.Width != u.w || res.Height != u.h {
			t.Fatalf("%s: output %s, want %s at %dx%d", u.key, inv.Output, want, u.w, u.h)
		}

		obj, err := srv.Client().GetObject(ctx, "thumbnails", u.key+".png", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(obj)
		obj.Close()
		if err != nil {
			t.Fatalf("thumbnails/%s.png: %v", u.key, err)
		}
		if b := img.Bounds(); b.Dx() != u.w || b.Dy() != u.h {
			t.Fatalf("thumbnails/%s.png is %dx%d, want %dx%d", u.key, b.Dx(), b.Dy(), u.w, u.h)
		}
		if u.redOverBlue {
			top, bottom := rgb(img.At(u.w/2, u.h/4)), rgb(img.At(u.w/2, u.h*3/4))
			if top[0] < 200 || top[2] > 55 || bottom[0] > 55 || bottom[2] < 200 {
				t.Fatalf("thumbnails/%s.png: top %v, bottom %v, want red over blue", u.key, top, bottom)
			}
		}
		info, err := srv.Client().StatObject(ctx, "thumbnails", u.key+".png", minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if info.ContentType != "image/png" || info.UserMetadata["Source-Etag"] != etags[u.key] {
			t.Fatalf("thumbnails/%s.png: content type %q, metadata %v; want image/png and source-etag %s", u.key, info.ContentType, info.UserMetadata, etags[u.key])
		}
	}
}

func rgb(c color.Color) [3]uint32 {
	r, g, b, _ := c.RGBA()
	return [3]uint32{r >> 8, g >> 8, b >> 8}
}

func gradient(x, y, w, h int) color.Color {
	return color.RGBA{uint8(255 * x / w), uint8(255 * y / h), 128, 255}
}

func redOverBlue(x, y, w, h int) color.Color {
	if y < h/2 {
		return color.RGBA{230, 20, 20, 255}
	}
	return color.RGBA{20, 20, 230, 255}
}

// encodeImage draws a w×h image with fill and encodes it as format (jpeg, png, gif).
func encodeImage(t *testing.T, format string, w, h int, fill func(x, y, w, h int) color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, fill(x, y, w, h))
		}
	}
	var buf bytes.Buffer
	var err error
	switch format {
	case "jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	case "png":
		err = png.Encode(&buf, img)
	case "gif":
		err = gif.Encode(&buf, img, nil)
	default:
		t.Fatalf("encodeImage: unknown format %q", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// s3Events reads fnhost_s3_events_total of the function thumbnail from /metrics, by
// "via/result".
func s3Events(t *testing.T, p *project) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "fnhost_s3_events_total{") || !strings.Contains(line, `function="thumbnail"`) {
			continue
		}
		labels, value, _ := strings.Cut(strings.TrimPrefix(line, "fnhost_s3_events_total"), " ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics: %q: %v", line, err)
		}
		out[label(labels, "via")+"/"+label(labels, "result")] = v
	}
	return out
}

// label returns the value of name in a Prometheus label set {a="x",b="y"}.
func label(set, name string) string {
	_, rest, ok := strings.Cut(set, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
