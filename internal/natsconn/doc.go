// Package natsconn turns the NATS connection settings of salvo's processes
// — server URLs, one way to authenticate (a credentials file, an nkey seed
// file, a user and password, or a token) and TLS — into a connection, for
// the worker (nats.* keys), the producer and the gateway (the nats CLI's
// flags and variables: Flags).
//
// A refused connection is a *ConnectError naming the server (its URL
// without password) and the settings to check; no error or log line holds
// a password, token or seed.
package natsconn
