package httpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"
)

// TransportBackoffDelay is the delay before in-process retry number attempt
// (0-based): initial·2^attempt, scaled by a uniform factor in [0.75, 1.25)
// drawn from rnd (uniform in [0, 1)), and capped at TransportBackoffCap
// before and after the jitter.
func TransportBackoffDelay(initial time.Duration, attempt int, rnd func() float64) time.Duration {
	if initial <= 0 {
		return 0
	}
	if attempt < 0 {
		attempt = 0
	}
	base := TransportBackoffCap
	if attempt < 40 {
		if d := initial << uint(attempt); d > 0 && d < TransportBackoffCap && d>>uint(attempt) == initial {
			base = d
		}
	}
	f := 1.0
	if rnd != nil {
		f = 1 + TransportJitter*(2*rnd()-1)
	}
	d := time.Duration(float64(base) * f)
	if d > TransportBackoffCap {
		d = TransportBackoffCap
	}
	if d < 0 {
		d = 0
	}
	return d
}

// transportRetriable reports whether an error from sending a request (no
// status line received) may be retried in-process: DNS, connect, TLS
// handshake and IO errors are, and so are connect timeouts (the dial and
// the TLS handshake both run under timeouts.connect and are treated
// alike); an attempt whose context is done (canceled, or one of the
// watchdog's phase timeouts), a build error and a certificate the client
// refuses (a configuration problem that recurs) are not. attemptCtx is
// the attempt's context: if it is done, the error is its cancellation,
// whatever the transport reports.
func transportRetriable(attemptCtx context.Context, err error) bool {
	if err == nil || attemptCtx.Err() != nil {
		return false
	}
	// A deadline error with the attempt's context alive can only be the
	// transport's own connect timeout (dial or TLS handshake): retried.
	if errors.Is(err, context.Canceled) {
		return false
	}
	var (
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth),
		errors.As(err, &hostErr), errors.As(err, &invalidCert):
		return false
	}
	return true
}

// sleepCtx waits d or until ctx is done; it reports whether it slept fully.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
