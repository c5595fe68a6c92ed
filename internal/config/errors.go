package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/salvo-run/salvo/internal/natsconn"
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

func (e *Error) Error() string { return e.name() + ": " + e.Problem }

// name is the key with its variable and flag:
// "nats_url (SALVO_NATS_URL, flag -nats-url)".
func (e *Error) name() string {
	var names []string
	if e.Env != "" {
		names = append(names, e.Env)
	}
	if e.Flag != "" {
		names = append(names, "flag -"+e.Flag)
	}
	if len(names) == 0 {
		return e.Key
	}
	return e.Key + " (" + strings.Join(names, ", ") + ")"
}

// namesOf names keys with their variables and flags, for a hint:
// "redis.password (SALVO_REDIS_PASSWORD); redis.username (…)".
func namesOf(keys []string) string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = keyError(k, nil, "").name()
	}
	return strings.Join(names, "; ")
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

// natsSettingError is an error of natsconn.Config in the user's keys: its
// "url" is nats_url, the others sit under nats.
func natsSettingError(err error) error {
	if ce, ok := lifecycle.AsConfigError(err); ok && ce.Key == "url" {
		return keyError("nats_url", err, "%s", ce.Err)
	}
	return inSection("nats", err)
}

// natsError is a failed NATS connection in the user's keys: the server
// (no password), what it refused and the settings to check.
func natsError(err error) error {
	var ce *natsconn.ConnectError
	if !errors.As(err, &ce) {
		return natsSettingError(err)
	}
	return fmt.Errorf("nats_url %s: connect: %w %s", ce.URL, ce.Err, ce.Hint(natsKeyName))
}

// natsKeyName names a natsconn.Config key as the worker's settings spell it.
func natsKeyName(key string) string {
	if key == "url" {
		return namesOf([]string{"nats_url"})
	}
	return namesOf([]string{"nats." + key})
}
