package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// decode reads a request body into v (a pointer to one of the *Params
// structs). It refuses bodies over maxBody bytes, anything but one JSON
// object, and any field v does not have, spelled exactly (encoding/json
// alone would take "ID" for "id"). An empty body is the empty object.
// Every error is invalid_argument naming the field.
func decode(data []byte, maxBody int, v any) error {
	if len(data) > maxBody {
		return invalid("body", "%d bytes, at most %d", len(data), maxBody)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	// First pass: one object, known keys only.
	var top map[string]json.RawMessage
	if err := strictDecode(data, &top); err != nil {
		return err
	}
	known := jsonFields(v)
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !known[k] {
			return invalid(k, "unknown field")
		}
	}
	// Second pass: the typed fields.
	return strictDecode(data, v)
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, v)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("body", "data after the JSON object")
	}
	return nil
}

// decodeError names the field of an encoding/json error decoding into v.
func decodeError(err error, v any) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &Error{Code: CodeInvalidArgument, Message: "body: not valid JSON: " + syn.Error(), Err: err}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &Error{Code: CodeInvalidArgument, Message: "body: must be a JSON object, not " + typ.Value, Err: err}
		}
		what := "must be " + kindWords(typ.Type)
		if f, ok := structField(v, typ.Field); ok && f.Kind() == reflect.Map && typ.Type.Kind() != reflect.Map {
			what = "values must be strings" // a map's value: Field names the map
		}
		return &Error{Code: CodeInvalidArgument, Message: typ.Field + ": " + what + ", not " + typ.Value, Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Code: CodeInvalidArgument, Message: "body: JSON ends early", Err: err}
	}
	// DisallowUnknownFields has no error type; decode's first pass has
	// already refused unknown keys, so this is a fallback only.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return invalid(strings.Trim(name, `"`), "unknown field")
	}
	return &Error{Code: CodeInvalidArgument, Message: "body: " + err.Error(), Err: err}
}

func kindWords(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Map:
		return "an object of strings"
	}
	return "a " + t.Kind().String()
}

// structField is the type of the field of the struct v points to whose
// JSON name is name.
func structField(v any, name string) (reflect.Type, bool) {
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	t = t.Elem()
	for i := range t.NumField() {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); n == name {
			return t.Field(i).Type, true
		}
	}
	return nil, false
}

var fieldCache sync.Map // reflect.Type → map[string]bool

// jsonFields is the set of JSON names of the struct v points to.
func jsonFields(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]bool)
	}
	fields := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = true
		}
	}
	fieldCache.Store(t, fields)
	return fields
}
