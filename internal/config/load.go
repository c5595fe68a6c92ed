package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrHelp is returned by Load when the arguments ask for help (-h, -help,
// --help); print Usage and exit successfully.
var ErrHelp = flag.ErrHelp

// flagSpec is a command-line flag: a shortcut for one setting.
type flagSpec struct {
	name, key, arg, usage string
}

// flagSpecs are the worker's flags besides -config, in usage order.
var flagSpecs = []flagSpec{
	{"nats-url", "nats_url", "url", "NATS server URL"},
	{"redis-url", "redis_url", "url", "Redis URL (redis:// or rediss://)"},
	{"prefix", "prefix", "name", "namespace of subjects, streams and Redis keys"},
	{"http-addr", "http_addr", "addr", "listen address of /healthz, /readyz and /statusz"},
	{"log-level", "log_level", "level", "debug | info | warn | error"},
	{"concurrency", "concurrency.default", "n", "in-flight calls per model and pod (models without their own limit)"},
	{"shutdown-grace", "shutdown_grace", "duration", "time in-flight calls get to finish at shutdown"},
	{"upstream-url", "upstream.default.base_url", "url", "base URL of the default route"},
	{"upstream-key-env", "upstream.default.api_key_env", "var", "environment variable holding the default route's API key"},
}

// flagOf maps a setting's key to its flag name.
var flagOf = func() map[string]string {
	m := make(map[string]string, len(flagSpecs))
	for _, f := range flagSpecs {
		m[f.key] = f.name
	}
	return m
}()

// Action is what the worker's flags ask it to do.
type Action int

const (
	// ActionRun runs the worker.
	ActionRun Action = iota
	// ActionApplyStreams (-apply-streams) changes the streams and consumers
	// on the server to the settings (ApplyStreams) and exits.
	ActionApplyStreams
)

// Load builds Settings from the built-in defaults, the YAML file (-config,
// else SALVO_CONFIG), the SALVO_* environment variables and the flags in
// args, each layer overriding the one before, and validates them (API key
// variables are read later, by Resolve). getenv is os.Getenv outside tests.
// With -h or --help in args it returns ErrHelp.
func Load(args []string, getenv func(string) string) (Settings, error) {
	s, _, err := LoadAction(args, getenv)
	return s, err
}

// LoadAction is Load that also returns the action the flags ask for.
func LoadAction(args []string, getenv func(string) string) (Settings, Action, error) {
	s, apply, err := load(args, getenv)
	if apply {
		return s, ActionApplyStreams, err
	}
	return s, ActionRun, err
}

func load(args []string, getenv func(string) string) (s Settings, apply bool, err error) {
	s = Default()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	configPath := fs.String("config", "", "")
	applyStreams := fs.Bool(ApplyFlag, false, "")
	values := make(map[string]*string, len(flagSpecs))
	for _, f := range flagSpecs {
		values[f.name] = fs.String(f.name, "", "")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, false, ErrHelp
		}
		return s, false, fmt.Errorf("flags: %w (see -help)", err)
	}
	if fs.NArg() > 0 {
		return s, false, fmt.Errorf("flags: unexpected argument %q (see -help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	l := loader{s: &s, explicit: map[string]bool{}}
	path := getenv(EnvConfig)
	if set["config"] {
		path = *configPath
	}
	if path != "" {
		if err := l.file(path); err != nil {
			return s, false, err
		}
	}
	if err := l.env(getenv); err != nil {
		return s, false, err
	}
	for _, f := range flagSpecs {
		if set[f.name] {
			if err := l.setString(f.key, *values[f.name], "flag -"+f.name); err != nil {
				return s, false, err
			}
		}
	}
	if l.explicit["retry.max_retries"] {
		// 0 is a value here ("never retry"), not "unset".
		s.Worker.Retry = s.Worker.Retry.WithMaxRetries(s.Worker.Retry.MaxRetries)
	}
	return s, *applyStreams, s.Validate()
}

// loader applies one layer after another to s.
type loader struct {
	s        *Settings
	explicit map[string]bool // keys some layer set
}

// file applies the YAML file at path. Unknown keys are errors.
func (l loader) file(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	if err := l.node("", doc.Content[0]); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// node applies the mapping n found at section.
func (l loader) node(section string, n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		key := section
		if key == "" {
			key = "(top level)"
		}
		return &Error{Key: key, Problem: fmt.Sprintf("line %d: must be a mapping of keys", n.Line)}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, val := n.Content[i], n.Content[i+1]
		key := name.Value
		if section != "" {
			key = section + "." + key
		}
		switch {
		case settingsSchema.sections[key]:
			if err := l.node(key, val); err != nil {
				return err
			}
		case settingsSchema.byKey[key] != nil:
			if err := l.setNode(key, val); err != nil {
				return err
			}
		default:
			return &Error{Key: key, Problem: fmt.Sprintf("line %d: unknown key", name.Line)}
		}
	}
	return nil
}

// env applies the SALVO_* variables: aliases first, then the canonical
// names, so the canonical name wins. Empty variables count as unset.
func (l loader) env(getenv func(string) string) error {
	for _, alias := range sortedKeys(envAliases) {
		if v := getenv(alias); v != "" {
			if err := l.setString(envAliases[alias], v, alias); err != nil {
				return err
			}
		}
	}
	for _, st := range settingsSchema.settings {
		name := EnvName(st.key)
		if v := getenv(name); v != "" {
			if err := l.setString(st.key, v, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// setString sets key from the text of an environment variable or flag
// (source names it, for the error).
func (l loader) setString(key, text, source string) error {
	st := settingsSchema.byKey[key]
	if err := parseText(st.field(l.s), text); err != nil {
		e := keyError(key, nil, "%s", err)
		if source != e.Env && source != "flag -"+e.Flag {
			e.Env = source // an alias
		}
		return e
	}
	l.explicit[key] = true
	return nil
}

// setNode sets key from the file's node.
func (l loader) setNode(key string, n *yaml.Node) error {
	if isNull(n) {
		return nil // "key:" with no value leaves the default
	}
	st := settingsSchema.byKey[key]
	if err := parseNode(st.field(l.s), n); err != nil {
		return keyError(key, nil, "line %d: %s", n.Line, err)
	}
	l.explicit[key] = true
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// strictDecode decodes a YAML (or JSON) value into v, refusing unknown
// fields.
func strictDecode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return cleanYAMLError(err)
	}
	return nil
}

// The decoder's wording names Go types; the user wrote keys and values.
var (
	unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)
	badValue     = regexp.MustCompile("cannot unmarshal !!\\w+ (`[^`]*`) into (\\S+)")
)

// cleanYAMLError drops the decoder's "yaml: unmarshal errors:" framing and
// line numbers (of a fragment, not of the user's file).
func cleanYAMLError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var parts []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "line "); ok {
			if _, after, ok := strings.Cut(rest, ": "); ok {
				line = after
			}
		}
		line = unknownField.ReplaceAllString(line, "unknown key $1")
		line = badValue.ReplaceAllString(line, "$1 is not a valid $2")
		if line != "" {
			parts = append(parts, line)
		}
	}
	return errors.New(strings.Join(parts, "; "))
}
