package main

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
)

const root = "../../.."

// The committed reference is what gendoc writes from the settings today:
// a key added, renamed or re-described without regenerating fails here.
func TestCommittedReferenceIsCurrent(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, render(&b, root))
	committed, err := os.ReadFile(filepath.Join(root, outputDefault))
	require.NoError(t, err)
	if got, want := string(committed), b.String(); got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s is out of date: run `go generate ./internal/config` (or go run ./internal/config/gendoc) and commit it.\n"+
					"first difference, line %d:\ncommitted: %s\ngenerated: %s", outputDefault, i+1, g, w)
			}
		}
	}
}

// Every key has its row, with its variable, and a description.
func TestReferenceHasARowPerKey(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, render(&b, root))
	rows := map[string]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		if cells := strings.Split(line, " | "); len(cells) == 5 && strings.HasPrefix(line, "| `") {
			rows[strings.Trim(cells[0], "| `")] = line
		}
	}
	require.Len(t, rows, len(config.Keys()), "one row per key")
	for _, k := range config.Keys() {
		row, ok := rows[k]
		require.True(t, ok, "no row for %s", k)
		require.Contains(t, row, "`"+config.EnvName(k)+"`", k)
		desc := strings.TrimSuffix(row[strings.LastIndex(strings.TrimSuffix(row, " |"), " | ")+3:], " |")
		require.Greater(t, len(desc), 10, "%s has a description: %q", k, row)
	}
	require.Contains(t, b.String(), "| `streams.max_deliver` | `SALVO_STREAMS_MAX_DELIVER` | integer | `1056` (derived) |",
		"a derived default is the value a worker runs with, marked derived")
	require.Contains(t, b.String(), "| `nats_url` | `SALVO_NATS_URL` · `-nats-url` | string | `nats://127.0.0.1:4222` |")
}

// Field comments: own, shared by the fields a group comment names, and
// none for a neighbour it does not name.
func TestParseFieldDocs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.go"), []byte(`package a

type C struct {
	// Alpha is the first.
	Alpha int
	// MaxMsgs and MaxBytes bound the stream.
	MaxMsgs  int
	MaxBytes int
	Other    int
	Trailing int // Trailing has a line comment.
}
`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a_test.go"), []byte("package a\n\ntype T struct {\n\t// X.\n\tX int\n}\n"), 0o600))
	docs, err := parseFieldDocs(dir)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"C.Alpha":    "Alpha is the first.\n",
		"C.MaxMsgs":  "MaxMsgs and MaxBytes bound the stream.\n",
		"C.MaxBytes": "MaxMsgs and MaxBytes bound the stream.\n",
		"C.Other":    "",
		"C.Trailing": "Trailing has a line comment.\n",
	}, docs)
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	names := map[string]string{"AckWait": "streams.ack_wait", "LeaseTTL": "lease.ttl"}
	for _, tc := range []struct{ doc, field, want string }{
		{"AckWait is the redelivery timer.", "AckWait", "The redelivery timer."},
		{"LeaseTTL: how long a claim\nholds; see AckWait.", "LeaseTTL", "How long a claim holds; see `streams.ack_wait`."},
		{"MaxWait bounds one wait.", "MaxWait", "Bounds one wait."},
		{"MaxMsgs and MaxBytes bound it.", "MaxMsgs", "MaxMsgs and MaxBytes bound it."},
		{"Default is the per-pod limit.", "Default", "The per-pod limit."},
		{"Uses AckWaitDefault, not AckWait.", "X", "Uses AckWaitDefault, not `streams.ack_wait`."},
	} {
		require.Equal(t, tc.want, describe(tc.doc, tc.field, names), tc.doc)
	}
	require.Equal(t, `a \| b \* &lt;p&gt;`, cell("a | b * <p>"))
}

// A zero secret has no default to show: an empty cell, as any other
// empty default, not the "[redacted]" a Secret prints.
func TestSecretsShowAnEmptyDefault(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, render(&b, root))
	require.False(t, strings.Contains(b.String(), "[redacted]"), "a default shows [redacted]")
	for _, k := range []string{"nats.password", "nats.token", "redis.password", "redis.sentinel_password"} {
		require.Contains(t, b.String(), "| `"+k+"` | `"+config.EnvName(k)+"` | string | — |", k)
	}
}

// The descriptions of the settings this module's config, natsconn and
// connauth packages declare speak of keys, not of Go: no field name of
// the declaring struct past a sentence's first word, no package-qualified
// name, no CamelCase identifier.
func TestConnectionDescriptionsNameNoGoIdentifier(t *testing.T) {
	t.Parallel()
	src, err := newSources(root)
	require.NoError(t, err)
	refs := config.Reference()
	names := identifierKeys(refs)
	for _, r := range refs {
		switch path.Base(r.Owner.PkgPath()) {
		case "config", "natsconn", "connauth":
		default:
			continue
		}
		doc, err := src.doc(r.Owner, r.Field.Name)
		require.NoError(t, err)
		desc := describe(doc, r.Field.Name, names)
		assert.Empty(t, goIdentifiers(desc, r.Owner), "%s: %s", r.Key, desc)
	}
}

var (
	qualified = regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*`)
	camel     = regexp.MustCompile(`\b[A-Za-z]*[a-z][A-Z][A-Za-z0-9]*\b`)
	// prose words that look like CamelCase.
	camelProse = map[string]bool{"JetStream": true, "OpenAI": true, "KiB": true, "MiB": true}
	// names of things that are field names too.
	properNouns = map[string]bool{"Redis": true, "Cluster": true, "Sentinel": true}
)

// goIdentifiers lists what in desc reads as Go rather than as prose: a
// capitalized field name of owner inside a sentence (but an acronym or a
// proper noun), Type.Field or pkg.Name, a CamelCase word.
func goIdentifiers(desc string, owner reflect.Type) []string {
	fields := map[string]bool{}
	for i := range owner.NumField() {
		fields[owner.Field(i).Name] = true
	}
	var found []string
	found = append(found, qualified.FindAllString(desc, -1)...)
	for _, w := range camel.FindAllString(desc, -1) {
		if !camelProse[w] {
			found = append(found, w)
		}
	}
	for _, sentence := range strings.Split(desc, ". ") {
		words := strings.Fields(sentence)
		for i, w := range words {
			w = strings.Trim(w, "(),;:.")
			if i > 0 && fields[w] && !properNouns[w] && strings.ToUpper(w) != w { // CA, NATS: acronyms
				found = append(found, w)
			}
		}
	}
	return found
}
