package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"
)

// decode unmarshals k into c strictly: a key that matches no field, or a
// value that does not fit its field, is an error naming the full key, and
// the environment variable it came from when fromEnv has one.
//
// Unknown keys come from the decoder's metadata rather than ErrorUnused,
// because ErrorUnused says "'providers[acme]' has invalid keys: base_ur"
// while the metadata lists each key whole, which reads better and needs no
// parsing of the library's message.
func decode(k *koanf.Koanf, c *Config, fromEnv map[string]string) error {
	var md mapstructure.Metadata
	err := k.UnmarshalWithConf("", c, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: strictHook,
			// Environment values are strings; let "256" fill an int.
			WeaklyTypedInput: true,
			// Keys are matched exactly: mapstructure's default ignores
			// case, which would let "Max_Batch" and "max_batch" in two
			// layers both apply, in no defined order.
			MatchName: func(mapKey, fieldName string) bool { return mapKey == fieldName },
			Metadata:  &md,
			TagName:   "koanf",
		},
	})
	var errs []error
	if err != nil {
		errs = decodeErrors(err)
	} else {
		for _, key := range md.Unused {
			errs = append(errs, &keyError{key: keyPath(key), err: errUnknownKey})
		}
	}
	for _, e := range errs {
		if ke, ok := e.(*keyError); ok {
			ke.source = fromEnv[ke.key]
		}
	}
	// The decoder walks maps in random order; a stable order makes the
	// message the same on every start.
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return join(errs)
}

var errUnknownKey = errors.New("unknown key")

var durationType = reflect.TypeFor[time.Duration]()

// strictHook closes two holes in mapstructure's conversions that would
// otherwise let a wrong value start silently. Durations must be strings with
// a unit ("30s"): a bare number would be taken as nanoseconds, so
// "timeout: 30" would mean 30ns. And a fraction where an integer belongs is
// refused rather than truncated.
func strictHook(from, to reflect.Type, data any) (any, error) {
	if to == durationType && from != durationType {
		return toDuration(from, data)
	}
	if f, ok := data.(float64); ok && isInt(to) && f != math.Trunc(f) {
		return nil, fmt.Errorf("%v is not a whole number", f)
	}
	return data, nil
}

func toDuration(from reflect.Type, data any) (any, error) {
	if s, ok := data.(string); ok {
		if s == "" {
			return time.Duration(0), nil // unset, as for other fields
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration such as \"30s\"", s)
		}
		return d, nil
	}
	if isInt(from) || from.Kind() == reflect.Float64 || from.Kind() == reflect.Float32 {
		if reflect.ValueOf(data).IsZero() {
			return time.Duration(0), nil // 0 needs no unit
		}
		return nil, fmt.Errorf("%v needs a unit, e.g. \"%vs\"", data, data)
	}
	return nil, fmt.Errorf("%v is not a duration such as \"30s\"", data)
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// keyError is a problem with one configuration key.
type keyError struct {
	key string
	// source names where the value came from, when the key alone would not
	// tell the reader (an environment variable).
	source string
	err    error
}

func (e *keyError) Error() string {
	if e.source != "" {
		return fmt.Sprintf("%s (from %s): %v", e.key, e.source, e.err)
	}
	return fmt.Sprintf("%s: %v", e.key, e.err)
}

func (e *keyError) Unwrap() error { return e.err }

// decodeErrors flattens mapstructure's tree of joined errors into one
// keyError per bad field.
func decodeErrors(err error) []error {
	if de, ok := err.(*mapstructure.DecodeError); ok {
		inner := de.Unwrap()
		if _, nested := errors.AsType[*mapstructure.DecodeError](inner); nested {
			return decodeErrors(inner)
		}
		if pe, ok := errors.AsType[*mapstructure.ParseError](inner); ok {
			inner = parseError{pe}
		}
		return []error{&keyError{key: keyPath(de.Name()), err: inner}}
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, decodeErrors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return decodeErrors(u.Unwrap())
	}
	return []error{err}
}

// parseError names the bad value, which mapstructure's message leaves out;
// with several layers the user may not know which one supplied it.
type parseError struct{ *mapstructure.ParseError }

func (e parseError) Error() string {
	return fmt.Sprintf("cannot parse %q as %s", fmt.Sprint(e.Value), e.Expected.Type())
}

func (e parseError) Unwrap() error { return e.ParseError }

// keyPath turns mapstructure's "providers[acme].timeout" into the koanf key
// "providers.acme.timeout" a user would write.
func keyPath(name string) string {
	name = strings.ReplaceAll(name, "[", ".")
	name = strings.ReplaceAll(name, "]", "")
	return name
}

// join is errors.Join on one line, because these errors end up as a single
// line on stderr.
func join(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return lineErrors(errs)
}

type lineErrors []error

func (e lineErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e lineErrors) Unwrap() []error { return e }
