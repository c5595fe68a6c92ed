package config

import (
	"fmt"
	"strings"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Error is an invalid setting, named as the user wrote it: its key in the
// config file, the environment variable and flag that set it, and where
// the value came from when that was the file.
//
//	streams.ack_wait (SALVO_STREAMS_ACK_WAIT): 1ms must be at least 100ms
type Error struct {
	// Key is the config file key, e.g. `upstream.routes["gpt-4o"].base_url`.
	Key string
	// Env is the environment variable of the setting holding Key; empty for
	// fields that only code sets.
	Env string
	// Flag is the command-line flag of the setting, if it has one.
	Flag string
	// Problem says what is wrong with the value.
	Problem string
	// Err is the package's error (errors.Is(err, queue.ErrInvalidConfig)
	// holds through it), or nil.
	Err error
}

func (e *Error) Error() string {
	var names []string
	if e.Env != "" {
		names = append(names, e.Env)
	}
	if e.Flag != "" {
		names = append(names, "flag -"+e.Flag)
	}
	if len(names) == 0 {
		return e.Key + ": " + e.Problem
	}
	return e.Key + " (" + strings.Join(names, ", ") + "): " + e.Problem
}

// Unwrap returns the package's error.
func (e *Error) Unwrap() error { return e.Err }

// keyError is an *Error for key with the environment variable and flag of
// the setting that holds it.
func keyError(key string, err error, format string, args ...any) *Error {
	e := &Error{Key: key, Problem: fmt.Sprintf(format, args...), Err: err}
	if st := settingOf(key); st != nil {
		e.Env = EnvName(st.key)
		e.Flag = flagOf[st.key]
	}
	return e
}

// inSection turns a package's *lifecycle.ConfigError into an *Error whose
// key starts with section (the key the package validated under); "" is the
// top level. The prefix is always the top-level key.
func inSection(section string, err error) error {
	if err == nil {
		return nil
	}
	ce, ok := lifecycle.AsConfigError(err)
	if !ok {
		if section == "" {
			return err
		}
		return fmt.Errorf("%s: %w", section, err)
	}
	key := ce.Key
	if section != "" && key != "prefix" {
		if strings.HasPrefix(key, "[") {
			key = section + key
		} else {
			key = section + "." + key
		}
	}
	return keyError(key, err, "%s", ce.Err.Error())
}
