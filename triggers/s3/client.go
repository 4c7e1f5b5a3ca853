package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/fnhost/fnhost/manifest"
)

// transportOptions sets up a transport for cfg's endpoint: its CA bundle, or no
// certificate checks at all with insecure.
func transportOptions(cfg *manifest.S3Trigger) (func(*http.Transport), error) {
	var tc *tls.Config
	if cfg.Insecure || cfg.CAFile != "" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.Insecure {
			tc.InsecureSkipVerify = true // the manifest asked for it: insecure: true
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
	}
	return func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = 32
		if tc != nil {
			tr.TLSClientConfig = tc
		}
	}, nil
}

// httpClient is the HTTP client for cfg's endpoint, for minio-go.
func httpClient(cfg *manifest.S3Trigger) (*http.Client, error) {
	opt, err := transportOptions(cfg)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	opt(tr)
	return &http.Client{Transport: tr}, nil
}

// awsConfig loads the configuration of the AWS SDK for cfg: the manifest's keys when it
// has them, otherwise the SDK's default chain (environment, shared files with profile,
// web identity, instance metadata).
func awsConfig(ctx context.Context, cfg *manifest.S3Trigger) (aws.Config, error) {
	topt, err := transportOptions(cfg)
	if err != nil {
		return aws.Config{}, err
	}
	// A buildable client, so that the SDK can add AWS_CA_BUNDLE to it.
	hc := awshttp.NewBuildableClient().WithTransportOptions(topt)
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithHTTPClient(hc),
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey.Reveal(), cfg.SecretKey.Reveal(), "")))
	}
	ac, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	return ac, nil
}

// newS3Client is the AWS SDK client for cfg: path-style addressing for on-premise stores
// (always with an endpoint other than AWS's, where virtual hosts rarely resolve).
func newS3Client(ac aws.Config, cfg *manifest.S3Trigger) *awss3.Client {
	return awss3.NewFromConfig(ac, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
		if cfg.PathStyle {
			o.UsePathStyle = true
		}
		// Checksums only when the operation needs them: on-premise stores differ in
		// which of the newer checksum headers they accept.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}

// newMinioClient is the minio-go client for cfg's endpoint, for what only MinIO offers:
// listening to bucket events and configuring bucket notifications.
func newMinioClient(cfg *manifest.S3Trigger) (*minio.Client, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("s3: endpoint is required to talk to MinIO")
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("s3: endpoint: %w", err)
	}
	hc, err := httpClient(cfg)
	if err != nil {
		return nil, err
	}
	var creds *miniocreds.Credentials
	if cfg.AccessKey != "" {
		creds = miniocreds.NewStaticV4(cfg.AccessKey.Reveal(), cfg.SecretKey.Reveal(), "")
	} else {
		creds = miniocreds.NewChainCredentials([]miniocreds.Provider{
			&miniocreds.EnvAWS{}, &miniocreds.EnvMinio{}, &miniocreds.FileAWSCredentials{Profile: cfg.Profile},
		})
	}
	return minio.New(u.Host, &minio.Options{
		Creds:     creds,
		Secure:    u.Scheme == "https",
		Region:    cfg.Region,
		Transport: hc.Transport,
	})
}

// backoff grows a retry delay from min up to max.
func backoff(d, lo, hi time.Duration) time.Duration {
	if d < lo {
		return lo
	}
	d *= 2
	if d > hi {
		return hi
	}
	return d
}
