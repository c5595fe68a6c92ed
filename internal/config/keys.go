package config

import (
	"encoding"
	"reflect"
	"sort"
	"strings"
)

// EnvPrefix starts every environment variable of a setting.
const EnvPrefix = "SALVO_"

// EnvConfig names the config file when -config is not given.
const EnvConfig = EnvPrefix + "CONFIG"

// EnvName is the environment variable of a setting: SALVO_ followed by the
// key upper-cased with '.' replaced by '_' (streams.ack_wait →
// SALVO_STREAMS_ACK_WAIT).
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envAliases are the variables older releases read, kept so deployments
// using them keep working. The canonical name wins when both are set.
var envAliases = map[string]string{
	"SALVO_CONCURRENCY":      "concurrency.default",
	"SALVO_UPSTREAM_URL":     "upstream.default.base_url",
	"SALVO_UPSTREAM_KEY_ENV": "upstream.default.api_key_env",
}

// setting is one key of the file: a value, a list or a map, never a
// section.
type setting struct {
	key   string
	index []int // field path from Settings; pointers on the way are allocated
	typ   reflect.Type
}

// settingsSchema lists every key, sorted, and every section.
var settingsSchema = buildSchema()

type schema struct {
	settings []setting
	byKey    map[string]*setting
	sections map[string]bool
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func buildSchema() schema {
	sc := schema{byKey: map[string]*setting{}, sections: map[string]bool{"": true}}
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		yamlFields(t, func(i int, f reflect.StructField, name string, inline bool) {
			idx := append(append([]int{}, index...), i)
			ft := f.Type
			if inline {
				walk(ft, prefix, idx)
				return
			}
			key := prefix + name
			st := ft
			if st.Kind() == reflect.Pointer {
				st = st.Elem()
			}
			if st.Kind() == reflect.Struct && !reflect.PointerTo(st).Implements(textUnmarshaler) {
				sc.sections[key] = true
				walk(st, key+".", idx)
				return
			}
			sc.settings = append(sc.settings, setting{key: key, index: idx, typ: ft})
		})
	}
	walk(reflect.TypeFor[Settings](), "", nil)
	sort.Slice(sc.settings, func(i, j int) bool { return sc.settings[i].key < sc.settings[j].key })
	for i := range sc.settings {
		sc.byKey[sc.settings[i].key] = &sc.settings[i]
	}
	return sc
}

// yamlFields calls fn, in order, for each field of the struct type t that
// a file can set: exported, with a yaml tag other than "-". name is the
// tag's name, inline whether the tag says ",inline".
func yamlFields(t reflect.Type, fn func(i int, f reflect.StructField, name string, inline bool)) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("yaml")
		if !ok || tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fn(i, f, name, opts == "inline")
	}
}

// Keys lists every setting's key, sorted: the leaves of the config file,
// each with an environment variable (EnvName).
func Keys() []string {
	keys := make([]string, len(settingsSchema.settings))
	for i, s := range settingsSchema.settings {
		keys[i] = s.key
	}
	return keys
}

// field is the setting's value inside s, allocating pointers on the way.
func (st *setting) field(s *Settings) reflect.Value {
	v := reflect.ValueOf(s).Elem()
	for _, i := range st.index {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

// settingOf is the setting that holds key, which may reach inside a list
// or map ("upstream.routes[\"m\"].base_url" is held by "upstream.routes").
func settingOf(key string) *setting {
	for k := key; k != ""; {
		if st, ok := settingsSchema.byKey[k]; ok {
			return st
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return nil
}
