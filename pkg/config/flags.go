package config

import "flag"

// SetFlags returns the flags of fs that were set on the command line, keyed
// by the koanf key that keys gives for each flag name, ready for
// Options.Flags. Unset flags are left out so their defaults do not override
// the file or the environment; flags missing from keys (such as --config)
// are ignored.
func SetFlags(fs *flag.FlagSet, keys map[string]string) map[string]any {
	out := make(map[string]any)
	fs.Visit(func(f *flag.Flag) {
		key, ok := keys[f.Name]
		if !ok {
			return
		}
		// Prefer the typed value, so a time.Duration flag stays a duration.
		if g, ok := f.Value.(flag.Getter); ok {
			out[key] = g.Get()
			return
		}
		out[key] = f.Value.String()
	})
	return out
}
