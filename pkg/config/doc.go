// Package config loads the configuration of every Switchyard service from
// one place, in one order: built-in defaults, a service's own defaults, a
// YAML file, SWITCHYARD_ environment variables, then command-line flags. It
// exists so that each component can own a plain Config struct with its
// defaults and validation while only this package (and the mains) know about
// koanf, and so that every service fails at start, with a message naming the
// key, on a typo or a bad value instead of running with a silent default.
package config
