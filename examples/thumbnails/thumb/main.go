// Command thumb is the handler of the thumbnails example. fnhost runs it once per image
// uploaded under images/ in the bucket "uploads": it reads the local copy fnhost
// downloaded (FNHOST_INPUT_FILE, because the trigger has download: true) and the event
// on stdin, writes a PNG thumbnail of at most 256 px on the long side into the bucket
// $THUMBNAIL_BUCKET (default "thumbnails") under the same key with ".png" appended,
// and prints the result as JSON on stdout.
//
// Exit status 3 means bad input that no retry can fix, such as a file that is not an
// image: the manifest lists 3 in permanent_exit_codes, so fnhost fails the invocation
// at once. Any other failure (MinIO unreachable, say) exits 1, and fnhost retries it.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // register the GIF, JPEG and PNG decoders for image.Decode
	_ "image/jpeg"
	"image/png"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	maxSide      = 256        // the long side of a thumbnail
	maxPixels    = 50_000_000 // larger images are refused, not decoded
	badInputExit = 3          // exit status for bad input: listed in permanent_exit_codes
)

// event is the part of fnhost's CloudEvent this handler needs: data is the S3 record.
type event struct {
	Data struct {
		S3 struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key  string `json:"key"`
				ETag string `json:"eTag"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"data"`
}

// result is printed on stdout and becomes the invocation's output.
type result struct {
	Thumbnail string `json:"thumbnail"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
}

func main() {
	// fnhost sends SIGTERM when the attempt's timeout is up: stop uploading then.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	res, err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "thumb:", err)
		if _, ok := err.(badInput); ok {
			os.Exit(badInputExit)
		}
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// badInput is an error that no retry can fix.
type badInput struct{ error }

func run(ctx context.Context) (*result, error) {
	var ev event
	if err := json.NewDecoder(os.Stdin).Decode(&ev); err != nil {
		return nil, badInput{fmt.Errorf("read the event from stdin: %w", err)}
	}
	src, key := ev.Data.S3.Bucket.Name, ev.Data.S3.Object.Key
	file := os.Getenv("FNHOST_INPUT_FILE")
	if file == "" || key == "" {
		return nil, badInput{fmt.Errorf("no object to work on: set download: true on the s3 trigger")}
	}

	img, format, err := decode(file)
	if err != nil {
		return nil, badInput{fmt.Errorf("s3://%s/%s is not an image thumb can read (JPEG, PNG or GIF): %w", src, key, err)}
	}
	thumb := scale(img, maxSide)
	var buf bytes.Buffer
	if err := png.Encode(&buf, thumb); err != nil {
		return nil, err
	}

	client, err := newClient()
	if err != nil {
		return nil, err
	}
	bucket := cmp.Or(os.Getenv("THUMBNAIL_BUCKET"), "thumbnails")
	if err := ensureBucket(ctx, client, bucket); err != nil {
		return nil, err
	}
	dst := key + ".png"
	_, err = client.PutObject(ctx, bucket, dst, &buf, int64(buf.Len()), minio.PutObjectOptions{
		ContentType:  "image/png",
		UserMetadata: map[string]string{"source-etag": ev.Data.S3.Object.ETag},
	})
	if err != nil {
		return nil, fmt.Errorf("upload s3://%s/%s: %w", bucket, dst, err)
	}
	size := thumb.Bounds().Size()
	fmt.Fprintf(os.Stderr, "thumb: s3://%s/%s (%s, %dx%d) -> s3://%s/%s (%dx%d)\n",
		src, key, format, img.Bounds().Dx(), img.Bounds().Dy(), bucket, dst, size.X, size.Y)
	return &result{Thumbnail: "s3://" + bucket + "/" + dst, Width: size.X, Height: size.Y}, nil
}

// decode reads an image, refusing before decoding one too large to hold in memory.
func decode(file string) (image.Image, string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, "", err
	}
	if cfg.Width*cfg.Height > maxPixels {
		return nil, "", fmt.Errorf("%dx%d is more than %d pixels", cfg.Width, cfg.Height, maxPixels)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, "", err
	}
	return image.Decode(f)
}

// scale shrinks img so that its long side is at most side pixels, keeping its aspect
// ratio, with a box filter: each pixel of the result is the average of the pixels of
// img it covers. A smaller image keeps its size.
func scale(img image.Image, side int) *image.RGBA {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	dw, dh := sw, sh
	if sw >= sh && sw > side {
		dw, dh = side, max(1, (sh*side+sw/2)/sw)
	} else if sh > sw && sh > side {
		dw, dh = max(1, (sw*side+sh/2)/sh), side
	}
	out := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		y0, y1 := y*sh/dh, max((y+1)*sh/dh, y*sh/dh+1)
		for x := range dw {
			x0, x1 := x*sw/dw, max((x+1)*sw/dw, x*sw/dw+1)
			var r, g, bl, a, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					// RGBA is alpha-premultiplied, so transparent pixels do not tint.
					pr, pg, pb, pa := img.At(b.Min.X+sx, b.Min.Y+sy).RGBA()
					r, g, bl, a, n = r+uint64(pr), g+uint64(pg), bl+uint64(pb), a+uint64(pa), n+1
				}
			}
			out.SetRGBA(x, y, color.RGBA{uint8(r / n >> 8), uint8(g / n >> 8), uint8(bl / n >> 8), uint8(a / n >> 8)})
		}
	}
	return out
}

// newClient connects to the MinIO (or any S3) server at $S3_ENDPOINT.
func newClient() (*minio.Client, error) {
	u, err := url.Parse(os.Getenv("S3_ENDPOINT"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("S3_ENDPOINT %q: want a URL such as http://127.0.0.1:9000", os.Getenv("S3_ENDPOINT"))
	}
	return minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(os.Getenv("S3_ACCESS_KEY"), os.Getenv("S3_SECRET_KEY"), ""),
		Secure: u.Scheme == "https",
	})
}

// ensureBucket creates bucket unless it exists. Handlers run side by side, so another
// one may create it in between: that is fine too.
func ensureBucket(ctx context.Context, client *minio.Client, bucket string) error {
	exists, err := client.BucketExists(ctx, bucket)
	if err != nil || exists {
		return err
	}
	err = client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		return nil
	}
	return err
}
