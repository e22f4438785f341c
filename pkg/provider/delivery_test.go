package provider_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/provider"
)

func TestDeliveryConfig(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mod     func(*provider.Config)
		wantErr string
	}{
		{"default", func(*provider.Config) {}, ""},
		{"at most once", func(c *provider.Config) { c.Delivery = provider.AtMostOnce }, ""},
		{"bad delivery", func(c *provider.Config) { c.Delivery = "exactly_once" }, "delivery:"},
		{"task override", func(c *provider.Config) {
			c.Tasks = map[string]provider.Task{"charge": {Delivery: provider.AtMostOnce}}
		}, ""},
		{"bad task name", func(c *provider.Config) { c.Tasks = map[string]provider.Task{"Charge": {}} }, "tasks:"},
		{"bad task delivery", func(c *provider.Config) {
			c.Tasks = map[string]provider.Task{"charge": {Delivery: "once"}}
		}, "tasks.charge.delivery"},
		{"ack wait too short", func(c *provider.Config) { c.AckWait = 500 * time.Millisecond }, "ack_wait"},
		{"ack wait", func(c *provider.Config) { c.AckWait = 2 * time.Second }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := provider.Config{BaseURL: "https://api.test"}
			tt.mod(&c)
			err := c.WithDefaults().Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	c := provider.Config{Delivery: provider.AtMostOnce, Tasks: map[string]provider.Task{
		"refund": {Delivery: provider.AtLeastOnce}, "other": {}}}
	for task, want := range map[string]provider.Delivery{"charge": provider.AtMostOnce, "refund": provider.AtLeastOnce, "other": provider.AtMostOnce} {
		if got := c.DeliveryFor(task); got != want {
			t.Errorf("DeliveryFor(%s) = %s, want %s", task, got, want)
		}
	}
	if got := (provider.Config{}).DeliveryFor("x"); got != provider.AtLeastOnce {
		t.Errorf("default DeliveryFor = %q, want at_least_once", got)
	}
}
