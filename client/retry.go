package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryPolicy is the retry part of Config, with defaults applied.
type retryPolicy struct {
	max              int // retries after the first attempt; 0: none
	minWait, maxWait time.Duration
	maxElapsed       time.Duration
	// sleep waits d or until ctx is done; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

func newRetryPolicy(cfg Config) retryPolicy {
	p := retryPolicy{max: cfg.MaxRetries, minWait: cfg.MinRetryWait, maxWait: cfg.MaxRetryWait, maxElapsed: cfg.MaxRetryElapsed, sleep: sleepCtx}
	switch {
	case p.max == 0:
		p.max = DefaultMaxRetries
	case p.max < 0:
		p.max = 0
	}
	if p.minWait <= 0 {
		p.minWait = DefaultMinRetryWait
	}
	if p.maxWait <= 0 {
		p.maxWait = DefaultMaxRetryWait
	}
	p.maxWait = max(p.maxWait, p.minWait)
	if p.maxElapsed <= 0 {
		p.maxElapsed = DefaultMaxRetryElapsed
	}
	return p
}

// wait returns how long to wait before retry number attempt+1, given the
// server's Retry-After (0: none) and the time already waited; ok is false
// when that wait would exceed the call's budget.
func (p retryPolicy) wait(attempt int, retryAfter, waited time.Duration) (d time.Duration, ok bool) {
	if retryAfter > 0 {
		// At least what the server asked for, plus up to 10% so that
		// clients told the same do not all come back at once.
		d = retryAfter + jitter(retryAfter/10)
	} else {
		// Exponential backoff with "equal jitter": half fixed, half random.
		b := p.minWait << min(attempt, 30)
		if b <= 0 || b > p.maxWait {
			b = p.maxWait
		}
		d = b/2 + jitter(b/2)
	}
	if waited+d > p.maxElapsed {
		return 0, false
	}
	return d, true
}

// jitter returns a random duration in [0, n].
func jitter(n time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return time.Duration(binary.LittleEndian.Uint64(b[:]) % uint64(n+1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryAfter is the server's Retry-After of err, or 0.
func retryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// parseRetryAfter parses a Retry-After header: delay seconds or an HTTP
// date; 0 when absent or invalid.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// permanent reports whether a transport error will not go away by trying
// again: the server's certificate is not trusted, or it does not speak
// TLS.
func permanent(err error) bool {
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// notSent reports whether a transport error happened before any byte of
// the request was sent: the connection could not be opened.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
