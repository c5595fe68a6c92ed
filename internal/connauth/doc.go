// Package connauth holds what the NATS and Redis connections of salvo's
// processes share about security: the TLS files a client presents and
// trusts (TLS), secrets read from a value or a file (Secret), and which of
// those settings a refused connection points at (TLSBlame).
//
// Like pkg/lifecycle it imports only the standard library and lifecycle;
// its errors are *lifecycle.ConfigError with the key relative to the
// struct, so whoever nests it puts the section in front (nats.tls.ca,
// redis.tls.cert, --tlsca).
package connauth
