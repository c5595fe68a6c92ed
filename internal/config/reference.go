package config

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// KeyRef is one setting as the configuration reference (docs/CONFIG.md,
// written by ./gendoc) shows it. Its description is the doc comment of
// Field in the source of Owner's package, so the Go comment stays the one
// place a setting is described.
type KeyRef struct {
	Key string
	// Env is the setting's environment variable (EnvName); Flag the
	// worker's flag for it, "" when none.
	Env  string
	Flag string
	// Type is how the value is written: string, integer, number, bool,
	// duration, "list of integers", "map of name → route", ….
	Type string
	// Default is the value a worker runs with when the key is not set,
	// as a config file would hold it; Derived is true when that value is
	// computed from other settings (Field's comment says how).
	Default string
	Derived bool
	// Owner is the struct type declaring Field.
	Owner reflect.Type
	Field reflect.StructField
	// Values are the fields of each value of a map whose values are
	// mappings (upstream.routes, escalations, …); nil for other keys.
	Values []ValueRef
}

// ValueRef is one field of a map's values.
type ValueRef struct {
	Name  string
	Type  string
	Owner reflect.Type
	Field reflect.StructField
}

// Reference lists every setting (the keys of Keys, in order) with its
// variable, flag, type and default.
func Reference() []KeyRef {
	resolved, pkg := referenceDefaults()
	refs := make([]KeyRef, 0, len(settingsSchema.settings))
	for i := range settingsSchema.settings {
		st := &settingsSchema.settings[i]
		owner, field := st.declaration()
		def, dpkg := st.field(&resolved).Interface(), st.field(&pkg).Interface()
		refs = append(refs, KeyRef{
			Key:     st.key,
			Env:     EnvName(st.key),
			Flag:    flagOf[st.key],
			Type:    TypeName(st.typ),
			Default: formatValue(reflect.ValueOf(def)),
			Derived: !reflect.DeepEqual(def, dpkg),
			Owner:   owner,
			Field:   field,
			Values:  valueRefs(st.typ),
		})
	}
	return refs
}

// referenceDefaults are the settings a worker runs with when nothing is
// set — each section as its package completes it, plus the values this
// package derives (max_deliver, heartbeat_interval) — and the same
// without the derivations.
func referenceDefaults() (resolved, pkg Settings) {
	d := Default()
	resolved, pkg = d, d
	resolved.Streams, pkg.Streams = d.QueueConfig(), d.Streams.WithDefaults()
	resolved.Lease, pkg.Lease = d.StateConfig(), d.Lease.WithDefaults()
	resolved.Upstream = d.upstream()
	pkg.Upstream = resolved.Upstream
	resolved.Worker, pkg.Worker = d.WorkerConfig(), d.Worker.WithDefaults()
	return resolved, pkg
}

// valueRefs lists the fields of t's values when t is a map of structs.
func valueRefs(t reflect.Type) []ValueRef {
	if t.Kind() != reflect.Map {
		return nil
	}
	e := t.Elem()
	if e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	if e.Kind() != reflect.Struct {
		return nil
	}
	var refs []ValueRef
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		yamlFields(t, func(_ int, f reflect.StructField, name string, inline bool) {
			if inline {
				walk(f.Type)
				return
			}
			refs = append(refs, ValueRef{Name: name, Type: TypeName(f.Type), Owner: t, Field: f})
		})
	}
	walk(e)
	return refs
}

// declaration is the struct type that declares the setting's field, and
// the field.
func (st *setting) declaration() (reflect.Type, reflect.StructField) {
	t := reflect.TypeFor[Settings]()
	var f reflect.StructField
	for n, i := range st.index {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		f = t.Field(i)
		if n < len(st.index)-1 {
			t = f.Type
		}
	}
	return t, f
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

// TypeName is how a value of t is written in a config file.
func TypeName(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return "duration"
	case t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler):
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list of " + plural(TypeName(t.Elem()))
	case reflect.Map:
		return "map of name → " + TypeName(t.Elem())
	case reflect.Struct:
		return "mapping"
	}
	return t.String()
}

func plural(s string) string {
	if strings.HasPrefix(s, "list") || strings.HasPrefix(s, "map") {
		return s
	}
	return s + "s"
}

// formatValue writes v as a config file would hold it.
func formatValue(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Type() == durationType {
		return formatDuration(time.Duration(v.Int()))
	}
	if s, ok := v.Interface().(lifecycle.Secret); ok && s.IsZero() {
		return "" // not the "[redacted]" a Secret prints: there is none
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		if b, err := m.MarshalText(); err == nil {
			return string(b)
		}
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatValue(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, fmt.Sprintf("%s: %s", k, formatValue(v.MapIndex(k))))
		}
		slices.Sort(keys)
		return "{" + strings.Join(keys, ", ") + "}"
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration is d in its shortest form: 192h rather than 192h0m0s.
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}
