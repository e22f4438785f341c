package provider

import (
	"fmt"
	"time"
)

// Delivery says how often a job's call may be made.
type Delivery string

const (
	// AtLeastOnce, the default: the job is acked only once its outcome is
	// stored, so a worker that dies mid-call leaves it to be called
	// again. The provider deduplicates through the idempotency header.
	AtLeastOnce Delivery = "at_least_once"
	// AtMostOnce, for endpoints that are not idempotent: the job is acked
	// (and the server has confirmed it) before its call, which is never
	// retried. A worker that dies mid-call leaves the job recorded
	// `unknown`; a call that fails is dead-lettered, for an operator to
	// check and replay.
	AtMostOnce Delivery = "at_most_once"
)

func (d Delivery) validate(key string) error {
	switch d {
	case "", AtLeastOnce, AtMostOnce:
		return nil
	}
	return fmt.Errorf("%s: %q must be %q or %q", key, d, AtLeastOnce, AtMostOnce)
}

// DeliveryFor returns the delivery of task's jobs.
func (c Config) DeliveryFor(task string) Delivery {
	if t, ok := c.Tasks[task]; ok && t.Delivery != "" {
		return t.Delivery
	}
	if c.Delivery == "" {
		return AtLeastOnce
	}
	return c.Delivery
}

// MinAckWait is the shortest ack_wait accepted.
const MinAckWait = time.Second

// validateDelivery checks delivery, ack_wait and tasks.
func (c Config) validateDelivery() error {
	if err := c.Delivery.validate("delivery"); err != nil {
		return err
	}
	if c.AckWait != 0 && c.AckWait < MinAckWait {
		return fmt.Errorf("ack_wait: %s must be at least %s (or 0 for 2×timeout+10s)", c.AckWait, MinAckWait)
	}
	for name, t := range c.Tasks { // names are checked with the retry overrides
		if err := t.Delivery.validate("tasks." + name + ".delivery"); err != nil {
			return err
		}
	}
	return nil
}
