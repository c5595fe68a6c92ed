package config

import (
	"encoding"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var durationType = reflect.TypeFor[time.Duration]()

// parseText sets v from the text of an environment variable or flag:
// strings as written; numbers, booleans and durations (30s, 5m) as Go
// parses them; lists as comma-separated items or a YAML/JSON list
// ([a, b]); maps as a YAML/JSON mapping ({gpt-4o: 128}).
func parseText(v reflect.Value, text string) error {
	switch v.Kind() {
	case reflect.Slice:
		if strings.HasPrefix(strings.TrimSpace(text), "[") {
			return decodeInto(v, []byte(text))
		}
		items := strings.Split(text, ",")
		out := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			if err := parseScalar(out.Index(i), strings.TrimSpace(item)); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		v.Set(out)
		return nil
	case reflect.Map:
		if !strings.HasPrefix(strings.TrimSpace(text), "{") {
			return fmt.Errorf("must be a YAML or JSON mapping such as {name: value}")
		}
		return decodeInto(v, []byte(text))
	}
	return parseScalar(v, text)
}

// parseNode sets v from a node of the config file.
func parseNode(v reflect.Value, n *yaml.Node) error {
	switch v.Kind() {
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("must be a list")
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("item %d: must be a single value", i)
			}
			if err := parseScalar(out.Index(i), item.Value); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		v.Set(out)
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("must be a mapping")
		}
		data, err := yaml.Marshal(n)
		if err != nil {
			return err
		}
		return decodeInto(v, data)
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a single value, not a list or mapping")
	}
	return parseScalar(v, n.Value)
}

// decodeInto decodes YAML (or JSON) data into a fresh value of v's type
// and sets v to it.
func decodeInto(v reflect.Value, data []byte) error {
	p := reflect.New(v.Type())
	if err := strictDecode(data, p.Interface()); err != nil {
		return err
	}
	if v.Kind() == reflect.Map && p.Elem().IsNil() {
		p.Elem().Set(reflect.MakeMap(v.Type()))
	}
	v.Set(p.Elem())
	return nil
}

// parseScalar sets v (a string, number, boolean, duration or text type)
// from text.
func parseScalar(v reflect.Value, text string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(text))
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("%q is not a duration (such as 500ms, 30s, 5m, 2h)", text)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%q is not true or false", text)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(text, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer", text)
		}
		v.SetInt(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(text, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a number", text)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("settings of type %s cannot be parsed", v.Type())
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
