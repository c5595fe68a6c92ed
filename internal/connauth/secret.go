package connauth

import (
	"os"
	"strings"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Secret is the secret a setting holds: value, or the content of file
// (trailing line breaks dropped, as secret files mounted from an orchestrator
// often end with one). Both set is an error naming fileKey; so is a file
// that cannot be read or is empty. The error never holds the secret.
func Secret(value lifecycle.Secret, file, key, fileKey string) (lifecycle.Secret, error) {
	switch {
	case file == "":
		return value, nil
	case value != "":
		return "", lifecycle.ConfigErrorf(fileKey, "set %s or %s, not both", key, fileKey)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", lifecycle.ConfigErrorf(fileKey, "%w", err)
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		return "", lifecycle.ConfigErrorf(fileKey, "%s is empty", file)
	}
	return lifecycle.Secret(s), nil
}
