package config

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sampleText is a value for the setting that differs from its zero value
// and from every default.
func sampleText(t *testing.T, st setting) string {
	t.Helper()
	if st.typ == durationType {
		return "17s"
	}
	switch st.typ.Kind() {
	case reflect.String:
		return "sample-" + strings.ReplaceAll(st.key, ".", "-")
	case reflect.Bool:
		return "true"
	case reflect.Int, reflect.Int64:
		if st.key == "streams.storage" {
			return "memory"
		}
		return "7"
	case reflect.Float64:
		return "0.5"
	case reflect.Slice:
		if st.typ.Elem().Kind() == reflect.String {
			return "a:1,b:2"
		}
		return "[418, 420]"
	case reflect.Map:
		if st.key == "escalations" {
			return `{"slow/model-1": {"model": "fast", "threshold": "10m", "mode": "race"}}`
		}
		if st.typ.Elem().Kind() == reflect.Int {
			return "{m: 3}"
		}
		if st.typ.Elem().Kind() == reflect.String {
			return `{"X-Team": "a"}`
		}
		if st.key == "rate_limits.budgets" {
			return `{"gpt-4o": {"requests_per_minute": 600, "tokens_per_minute": 200000}}`
		}
		return `{"meta/llama-3.1": {"base_url": "http://h:1", "headers": {"X-A": "b"}}}`
	}
	t.Fatalf("%s: no sample for %s", st.key, st.typ)
	return ""
}

// Every key of the file can be set by its SALVO_ variable.
func TestEveryKeyIsSettableByItsVariable(t *testing.T) {
	t.Parallel()
	require.NotEmpty(t, settingsSchema.settings)
	seen := map[string]string{}
	for _, st := range settingsSchema.settings {
		name := EnvName(st.key)
		require.NotContains(t, seen, name, "%s and %s share a variable", st.key, seen[name])
		seen[name] = st.key

		s := Default()
		before := st.field(&s).Interface()
		l := loader{s: &s, explicit: map[string]bool{}}
		env := map[string]string{name: sampleText(t, st)}
		require.NoError(t, l.env(func(k string) string { return env[k] }), st.key)
		after := st.field(&s).Interface()
		require.NotEqual(t, before, after, "%s was not set by %s", st.key, name)
		require.True(t, l.explicit[st.key], st.key)
	}
	for alias, key := range envAliases {
		require.Contains(t, settingsSchema.byKey, key, alias)
		require.NotContains(t, seen, alias, "alias %s shadows a variable", alias)
	}
	for _, f := range flagSpecs {
		require.Contains(t, settingsSchema.byKey, f.key, "flag -%s", f.name)
	}
	require.Equal(t, 17*time.Second, func() time.Duration {
		s := Default()
		l := loader{s: &s, explicit: map[string]bool{}}
		require.NoError(t, l.env(func(k string) string { return map[string]string{"SALVO_STREAMS_ACK_WAIT": "17s"}[k] }))
		return s.Streams.AckWait
	}(), "a section key reaches the package's own config")
}

// The example file and the help mention every key, so neither falls
// behind the settings.
func TestExampleFileAndUsageNameEveryKey(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile("../../deployments/worker.example.yaml")
	require.NoError(t, err)
	var usage bytes.Buffer
	Usage(&usage)
	for _, k := range Keys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		require.Contains(t, string(example), leaf+":", "example file lacks %s", k)
		require.Contains(t, usage.String(), k+" ", "usage lacks %s", k)
		require.Contains(t, usage.String(), EnvName(k), "usage lacks %s", EnvName(k))
	}
	for _, f := range flagSpecs {
		require.Contains(t, usage.String(), "-"+f.name+" ")
	}
}

func TestSettingOfFindsTheHoldingKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"streams.ack_wait":                          "streams.ack_wait",
		`upstream.routes["meta.llama[1]"].base_url`: "upstream.routes",
		"retry.extra_retriable_statuses[3]":         "retry.extra_retriable_statuses",
		`concurrency.models["gpt-4o"]`:              "concurrency.models",
		"upstream.default.api_key_env":              "upstream.default.api_key_env",
	} {
		st := settingOf(key)
		require.NotNil(t, st, key)
		require.Equal(t, want, st.key, key)
	}
	require.Nil(t, settingOf("streams.discovery_interval"), "fields only code sets have no variable")
}
