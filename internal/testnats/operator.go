package testnats

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Operator is a NATS operator with one account, JetStream enabled without
// limits, as `nsc` would make them. Its Option puts a server in operator
// (JWT) mode trusting it, the account preloaded in a memory resolver;
// Creds writes a credentials file of a new user of the account.
type Operator struct {
	t       testing.TB
	claims  *jwt.OperatorClaims
	account nkeys.KeyPair
	// jwts are the account JWTs by public key: the account and the system
	// account (JetStream needs one in operator mode).
	jwts   map[string]string
	sysPub string
}

// NewOperator makes an operator and its account. Each call makes keys of
// its own: a server trusting one refuses another's users.
func NewOperator(t testing.TB) *Operator {
	t.Helper()
	opKP := mustKP(t, nkeys.CreateOperator)
	opPub, _ := opKP.PublicKey()
	sysKP := mustKP(t, nkeys.CreateAccount)
	sysPub, _ := sysKP.PublicKey()
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(opKP)
	if err != nil {
		t.Fatalf("testnats: system account JWT: %v", err)
	}
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "salvo-test"
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(opKP)
	if err != nil {
		t.Fatalf("testnats: operator JWT: %v", err)
	}
	if oc, err = jwt.DecodeOperatorClaims(opJWT); err != nil {
		t.Fatalf("testnats: operator JWT: %v", err)
	}
	accKP := mustKP(t, nkeys.CreateAccount)
	accPub, _ := accKP.PublicKey()
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = "salvo"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := ac.Encode(opKP)
	if err != nil {
		t.Fatalf("testnats: account JWT: %v", err)
	}
	return &Operator{t: t, claims: oc, account: accKP, jwts: map[string]string{accPub: accJWT, sysPub: sysJWT}, sysPub: sysPub}
}

// Option makes the server trust the operator, its accounts preloaded.
func (op *Operator) Option() Option {
	return func(o *server.Options) {
		r := &server.MemAccResolver{}
		for pub, accJWT := range op.jwts {
			if err := r.Store(pub, accJWT); err != nil {
				op.t.Fatalf("testnats: store account: %v", err)
			}
		}
		o.TrustedOperators = []*jwt.OperatorClaims{op.claims}
		o.SystemAccount = op.sysPub
		o.AccountResolver = r
	}
}

// Creds writes the credentials file of a new user of the account (JWT and
// seed, jwt.FormatUserConfig) into a temporary directory and returns its
// path.
func (op *Operator) Creds(t testing.TB) string {
	t.Helper()
	uKP := mustKP(t, nkeys.CreateUser)
	uPub, _ := uKP.PublicKey()
	uc := jwt.NewUserClaims(uPub)
	uc.Name = "salvo-worker"
	uJWT, err := uc.Encode(op.account)
	if err != nil {
		t.Fatalf("testnats: user JWT: %v", err)
	}
	seed, _ := uKP.Seed()
	data, err := jwt.FormatUserConfig(uJWT, seed)
	if err != nil {
		t.Fatalf("testnats: creds: %v", err)
	}
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("testnats: creds: %v", err)
	}
	return path
}

func mustKP(t testing.TB, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatalf("testnats: nkey: %v", err)
	}
	return kp
}
