package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/config"
)

// TestLoadErrorsHideSecrets: a config that holds secrets and is wrong
// somewhere, even in the secret's own key, fails without repeating them.
// (A secret pasted into a key that is not secret, say concurrency, is
// echoed like any bad value: that error must show what it could not
// parse.)
func TestLoadErrorsHideSecrets(t *testing.T) {
	const (
		password = "nats-pw-91c2e7a4b5"
		token    = "nats-tok-3d6f8a0b1c"
		apiKey   = "api-key-5e7a9c1d3f"
	)
	t.Setenv("SWITCHYARD_TEST_CFG_KEY", apiKey+"\r\n\x01")
	dir := t.TempDir()
	tests := []struct{ name, file string }{
		{"bad key next to a password", "nats:\n  user: w\n  password: " + password + "\n  pasword: x\n"},
		{"password of the wrong type", "nats:\n  user: w\n  password: {x: " + password + "}\n"},
		{"password as a list", "nats:\n  user: w\n  password: [" + password + ", " + password + "]\n"},
		{"token and user both", "nats:\n  user: w\n  token: " + token + "\n"},
		{"token of the wrong type", "nats:\n  token: [" + token + "]\n"},
		{"credentials in the URL", "nats:\n  url: \"nats://w:" + password + "@[::1\"\n"},
		{"token in the URL", "nats:\n  url: \"nats://" + token + "@host:notaport\"\n"},
		{"bad provider next to its secret", "providers:\n  acme:\n    base_url: https://api.acme.example\n    auth: {header: Authorization, env: SWITCHYARD_TEST_CFG_KEY}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(config.Options{File: path, Env: []string{}})
			if err == nil {
				t.Fatal("Load accepted a bad config")
			}
			for _, s := range []string{password, token, apiKey} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error repeats a secret: %v", err)
				}
			}
		})
	}
}
