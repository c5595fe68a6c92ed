package natsconn

import (
	"strings"

	"github.com/salvo-run/salvo/internal/connauth"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Flags are the nats CLI's connection flags, each with the nats CLI's
// environment variable, as the producer and the gateway take them. A flag
// given on the command line wins over its variable.
type Flags struct {
	// ServerFlag names the program's server flag ("server", "nats-url");
	// the program registers it, Server holds its value.
	ServerFlag string
	Server     string

	Creds, NKey, User, Password string
	TLSCert, TLSKey, TLSCA      string

	// EnvPrefix, when the program reads variables of its own that set
	// its flags and win over the nats CLI's ("SALVO_GATEWAY_": the flag
	// upper-cased, '-' → '_'), is their prefix, for Name to name both.
	// The program reads them; Flags only names them.
	EnvPrefix string
}

// ServerEnv is the server flag's variable.
const ServerEnv = "NATS_URL"

// flagEnv maps each flag Register adds to its variable.
var flagEnv = map[string]string{
	"creds":    "NATS_CREDS",
	"nkey":     "NATS_NKEY",
	"user":     "NATS_USER",
	"password": "NATS_PASSWORD",
	"tlscert":  "NATS_CERT",
	"tlskey":   "NATS_KEY",
	"tlsca":    "NATS_CA",
}

// flagOfKey maps a Config key to the flag that sets it.
var flagOfKey = map[string]string{
	"creds": "creds", "nkey": "nkey", "user": "user", "password": "password", "token": "user",
	"tls.cert": "tlscert", "tls.key": "tlskey", "tls.ca": "tlsca",
	// TLS is on with any TLS flag or a tls:// URL.
	"tls.enabled": "tlsca", "tls.server_name": "tlsca",
}

// FlagSet is what Register needs of a flag set: the standard library's
// and pflag's both have it.
type FlagSet interface {
	StringVar(p *string, name, value, usage string)
}

// Register adds the authentication and TLS flags to fs.
func (f *Flags) Register(fs FlagSet) {
	fs.StringVar(&f.Creds, "creds", "", "NATS user credentials file (env NATS_CREDS)")
	fs.StringVar(&f.NKey, "nkey", "", "NATS nkey seed file (env NATS_NKEY)")
	fs.StringVar(&f.User, "user", "", "NATS user name, or a token when no --password is given (env NATS_USER)")
	fs.StringVar(&f.Password, "password", "", "NATS password (env NATS_PASSWORD)")
	fs.StringVar(&f.TLSCert, "tlscert", "", "TLS client certificate file (env NATS_CERT)")
	fs.StringVar(&f.TLSKey, "tlskey", "", "TLS client private key file (env NATS_KEY)")
	fs.StringVar(&f.TLSCA, "tlsca", "", "TLS certificate authority file to trust (env NATS_CA)")
}

// FromEnv fills each flag that changed does not report as given on the
// command line from its variable, the server flag from NATS_URL. Empty
// variables count as unset.
func (f *Flags) FromEnv(changed func(flag string) bool, getenv func(string) string) {
	targets := map[string]*string{
		"creds": &f.Creds, "nkey": &f.NKey, "user": &f.User, "password": &f.Password,
		"tlscert": &f.TLSCert, "tlskey": &f.TLSKey, "tlsca": &f.TLSCA,
	}
	for name, env := range flagEnv {
		if v := strings.TrimSpace(getenv(env)); v != "" && !changed(name) {
			*targets[name] = v
		}
	}
	if v := strings.TrimSpace(getenv(ServerEnv)); v != "" && !changed(f.ServerFlag) {
		f.Server = v
	}
}

// Config is the connection the flags describe. A user without a password
// is a token, as with the nats CLI.
func (f *Flags) Config() Config {
	c := Config{
		URL: f.Server, Creds: f.Creds, NKey: f.NKey,
		TLS: connauth.TLS{CA: f.TLSCA, Cert: f.TLSCert, Key: f.TLSKey},
	}
	switch {
	case f.User != "" && f.Password == "":
		c.Token = lifecycle.Secret(f.User)
	case f.User != "" || f.Password != "":
		c.User, c.Password = f.User, lifecycle.Secret(f.Password)
	}
	return c
}

// Name is how the command line spells the setting of a Config key:
// "--creds (NATS_CREDS)", or with EnvPrefix "--creds (SALVO_GATEWAY_CREDS
// or NATS_CREDS)", the program's variable first as it wins.
func (f *Flags) Name(key string) string {
	name, env := f.ServerFlag, ServerEnv
	if key != "url" {
		var ok bool
		if name, ok = flagOfKey[key]; !ok {
			return key
		}
		env = flagEnv[name]
	}
	if f.EnvPrefix != "" {
		env = f.EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + " or " + env
	}
	return "--" + name + " (" + env + ")"
}

// Problem is err from Config.Validate or Options in the command line's
// words: "--tlskey (NATS_KEY): is required with cert …"; other errors as
// they are.
func (f *Flags) Problem(err error) string {
	if ce, ok := lifecycle.AsConfigError(err); ok {
		return f.Name(ce.Key) + ": " + ce.Err.Error()
	}
	return err.Error()
}
