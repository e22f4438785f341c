package job

import (
	"fmt"
	"strings"
)

// Lane separates a provider's latency-sensitive trickle from its big batches.
// Both lanes share the provider's limits; live goes first.
type Lane string

const (
	// LaneLive is the default lane: small, latency-sensitive trickles.
	LaneLive Lane = "live"
	// LaneBulk carries big batches that may wait behind live work.
	LaneBulk Lane = "bulk"
)

// Lanes lists every lane, live first.
var Lanes = []Lane{LaneLive, LaneBulk}

// Valid reports whether l is a known lane.
func (l Lane) Valid() bool { return l == LaneLive || l == LaneBulk }

// Subject prefixes, one per stream.
const (
	JobsPrefix    = "jobs"
	ResultsPrefix = "results"
	DLQPrefix     = "dlq"
)

// ValidToken reports whether s may be used as a provider or task name: 1–64
// characters of [a-z0-9_-]. Such a token is always a safe single NATS subject
// token and a safe part of a consumer name.
func ValidToken(s string) bool { return matches(s, 64, &tokenChars) }

func checkToken(field, s string) error {
	if !ValidToken(s) {
		return &FieldError{Field: field, Reason: fmt.Sprintf("%q must match [a-z0-9_-]{1,64}", s)}
	}
	return nil
}

// Subject returns the subject a job for provider and task is published on.
// It does not validate its arguments; use ParseSubject or Job.Validate for that.
func Subject(provider string, lane Lane, task string) string {
	return JobsPrefix + "." + provider + "." + string(lane) + "." + task
}

// LaneFilter returns the filter subject of the work consumer for one lane of
// one provider: jobs.<provider>.<lane>.>.
func LaneFilter(provider string, lane Lane) string {
	return JobsPrefix + "." + provider + "." + string(lane) + ".>"
}

// WorkConsumer names the durable consumer that every worker replica serving
// provider's lane shares.
func WorkConsumer(provider string, lane Lane) string {
	return "work_" + provider + "_" + string(lane)
}

// ResultSubject returns the subject a result for provider and task is
// published on.
func ResultSubject(provider, task string) string {
	return ResultsPrefix + "." + provider + "." + task
}

// DLQSubject returns the subject a dead letter for provider and task is
// published on.
func DLQSubject(provider, task string) string {
	return DLQPrefix + "." + provider + "." + task
}

// Address is what a job subject says: which provider, lane and task.
type Address struct {
	Provider string
	Lane     Lane
	Task     string
}

// Subject returns the job subject for a.
func (a Address) Subject() string { return Subject(a.Provider, a.Lane, a.Task) }

// ParseSubject splits a job subject jobs.<provider>.<lane>.<task> and checks
// every token.
func ParseSubject(subject string) (Address, error) {
	// Split in place: every job's subject is parsed.
	var parts [4]string
	rest, ok := subject, true
	for i := range 3 {
		if parts[i], rest, ok = strings.Cut(rest, "."); !ok {
			break
		}
	}
	parts[3] = rest
	if !ok || strings.IndexByte(rest, '.') >= 0 || parts[0] != JobsPrefix {
		return Address{}, &FieldError{Field: "subject", Reason: fmt.Sprintf("%q is not jobs.<provider>.<lane>.<task>", subject)}
	}
	a := Address{Provider: parts[1], Lane: Lane(parts[2]), Task: parts[3]}
	if err := checkToken("subject provider", a.Provider); err != nil {
		return Address{}, err
	}
	if !a.Lane.Valid() {
		return Address{}, &FieldError{Field: "subject lane", Reason: fmt.Sprintf("%q is not a lane (want live or bulk)", parts[2])}
	}
	if err := checkToken("subject task", a.Task); err != nil {
		return Address{}, err
	}
	return a, nil
}
