package logging_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/logging"
)

func TestNewJSONRedacts(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := logging.New(&buf, logging.Config{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	log.With("access_token", "hunter2").WithGroup("call").Info("sent",
		"password", "hunter2",
		"Token", "hunter2",
		"authorization", "hunter2",
		"X-Api-Key", "hunter2",
		"dsn", logging.Secret("hunter2"),
		"provider", "acme",
		slog.Group("nats", "password", "hunter2", "url", "nats://n:4222"),
		"headers", http.Header{"Authorization": {"Bearer hunter2"}, "Accept": {"application/json"}},
	)

	if strings.Contains(buf.String(), "hunter2") {
		t.Fatalf("secret leaked: %s", buf.String())
	}
	var got struct {
		AccessToken string `json:"access_token"`
		Call        struct {
			Password      string              `json:"password"`
			Token         string              `json:"Token"`
			Authorization string              `json:"authorization"`
			APIKey        string              `json:"X-Api-Key"`
			DSN           string              `json:"dsn"`
			Provider      string              `json:"provider"`
			Headers       map[string][]string `json:"headers"`
			NATS          struct {
				Password string `json:"password"`
				URL      string `json:"url"`
			} `json:"nats"`
		} `json:"call"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	const r = "[REDACTED]"
	c := got.Call
	for name, v := range map[string]string{
		"access_token": got.AccessToken, "password": c.Password, "Token": c.Token,
		"authorization": c.Authorization, "X-Api-Key": c.APIKey, "dsn": c.DSN,
		"nats.password": c.NATS.Password, "headers.Authorization": strings.Join(c.Headers["Authorization"], ","),
	} {
		if v != r {
			t.Errorf("%s = %q, want %q", name, v, r)
		}
	}
	// Ordinary attributes pass through untouched.
	if c.Provider != "acme" || c.NATS.URL != "nats://n:4222" || c.Headers["Accept"][0] != "application/json" {
		t.Errorf("ordinary attributes changed: %s", buf.String())
	}
}

func TestNewLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		level    string
		wantInfo bool
		wantWarn bool
	}{
		{"", true, true}, // default info
		{"debug", true, true},
		{"info", true, true},
		{"warn", false, true},
		{"error", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log, err := logging.New(&buf, logging.Config{Level: tt.level, Format: "json"})
			if err != nil {
				t.Fatal(err)
			}
			log.Info("info-line")
			log.Warn("warn-line")
			if got := strings.Contains(buf.String(), "info-line"); got != tt.wantInfo {
				t.Errorf("info written = %v, want %v", got, tt.wantInfo)
			}
			if got := strings.Contains(buf.String(), "warn-line"); got != tt.wantWarn {
				t.Errorf("warn written = %v, want %v", got, tt.wantWarn)
			}
		})
	}
}

func TestNewFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      logging.Config
		wantJSON bool
		wantErr  string
	}{
		{name: "text uses tint", cfg: logging.Config{Format: "text"}},
		{name: "auto off a terminal is JSON", cfg: logging.Config{}, wantJSON: true},
		{name: "json", cfg: logging.Config{Format: "json"}, wantJSON: true},
		{name: "bad format", cfg: logging.Config{Format: "xml"}, wantErr: `logging: format: "xml"`},
		{name: "bad level", cfg: logging.Config{Level: "verbose"}, wantErr: `logging: level: "verbose"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log, err := logging.New(&buf, tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello", "job", 42, "password", "hunter2")
			out := buf.String()
			if !strings.Contains(out, "hello") || !strings.Contains(out, "[REDACTED]") || strings.Contains(out, "hunter2") {
				t.Fatalf("output %q", out)
			}
			if isJSON := json.Valid(buf.Bytes()); isJSON != tt.wantJSON {
				t.Errorf("JSON = %v, want %v: %q", isJSON, tt.wantJSON, out)
			}
			if !tt.wantJSON && !strings.Contains(out, "job=42") {
				t.Errorf("not tint's key=value text: %q", out)
			}
			// Not a terminal, so no colour codes.
			if strings.Contains(out, "\x1b[") {
				t.Errorf("colour codes written to a buffer: %q", out)
			}
		})
	}
}

func TestSecretFormats(t *testing.T) {
	t.Parallel()
	s := logging.Secret("hunter2")
	if got := fmt.Sprintf("%v %s", s, s); got != "[REDACTED] [REDACTED]" {
		t.Errorf("fmt = %q", got)
	}
	if string(s) != "hunter2" {
		t.Errorf("conversion lost the value")
	}
}
