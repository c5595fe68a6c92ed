package connauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// TLS is a client's TLS settings, files in PEM. The zero value is "no TLS
// settings": the URL decides (tls://, rediss://). Setting any field turns
// TLS on.
type TLS struct {
	// Enabled turns TLS on with the system's roots when no other field is
	// set (a server whose certificate a public CA signed).
	Enabled bool `yaml:"enabled"`
	// CA is the certificate authority file the server's certificate must
	// chain to, instead of the system's roots.
	CA string `yaml:"ca"`
	// Cert is the client certificate file, for a server that verifies its
	// clients (mutual TLS); set together with the key.
	Cert string `yaml:"cert"`
	// Key is the private key file of the client certificate; set together
	// with the cert.
	Key string `yaml:"key"`
	// ServerName is the name the server's certificate must carry, when it
	// is not the host the client dials (an address given by IP, cluster
	// nodes announced by IP).
	ServerName string `yaml:"server_name"`
}

// On reports whether any field asks for TLS.
func (t TLS) On() bool { return t != TLS{} }

// Validate checks the fields without reading the files.
func (t TLS) Validate() error {
	switch {
	case t.Cert != "" && t.Key == "":
		return lifecycle.ConfigErrorf("key", "is required with a client certificate (its private key)")
	case t.Key != "" && t.Cert == "":
		return lifecycle.ConfigErrorf("cert", "is required with a client private key (its certificate)")
	}
	return nil
}

// Config reads the files and returns the client's TLS config, nil when
// the zero value asks for nothing. A file that cannot be read or parsed is
// a *lifecycle.ConfigError naming its field ("ca", "cert").
func (t TLS) Config() (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, lifecycle.ConfigErrorf("ca", "%w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, lifecycle.ConfigErrorf("ca", "%s holds no PEM certificate", t.CA)
		}
		c.RootCAs = pool
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			// The error names neither file's content: the key stays unprinted.
			return nil, lifecycle.ConfigErrorf("cert", "%s with key %s: %w", t.Cert, t.Key, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// TLSBlame is the field of TLS that a failed connection points at: "ca"
// when the server's certificate does not chain to the trusted roots,
// "server_name" when it does not carry the dialled name, "cert" when the
// server refused the client's certificate (or its absence), "enabled"
// when the server answered the handshake in plain text; "" when err is
// not about TLS.
func TLSBlame(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &record):
		// The first bytes back are no TLS record: a plain-text server.
		return "enabled"
	case errors.As(err, &hostname):
		return "server_name"
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &verify):
		return "ca"
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the server (crypto/tls reports it this way, its
		// alert type unexported): after a handshake that verified the
		// server, what the server refuses is the client's certificate.
		return "cert"
	}
	return ""
}

// Describe says what a TLS problem means, for the hint after an error.
func Describe(field string) string {
	switch field {
	case "ca":
		return "the server's certificate is not signed by the trusted CA"
	case "server_name":
		return "the server's certificate does not name the host dialled"
	case "cert":
		return "the server refused the client certificate, or wants one"
	case "enabled":
		return "TLS is on but the server answered in plain text"
	}
	return "TLS " + field
}
