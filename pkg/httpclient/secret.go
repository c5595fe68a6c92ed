package httpclient

import "github.com/salvo-run/salvo/pkg/lifecycle"

// Secret is an API key: lifecycle.Secret, which redacts itself wherever it
// is printed or marshaled.
type Secret = lifecycle.Secret
