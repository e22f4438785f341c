package worker

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// schedSkew is how far ahead of this replica's clock a job fired by a
// NATS message schedule may be and still count as due: the server fired
// it by its own clock, which may run ahead of ours.
const schedSkew = time.Second

// due reports whether a job with a not_before may be called now.
func due(hdr nats.Header, j *job.Job, now time.Time) bool {
	early := j.NotBefore.Sub(now)
	return early <= 0 || (early < schedSkew && hdr.Get("Nats-Scheduler") != "")
}

// reschedule hands a job that arrived before its not_before back to the
// server as a message schedule, on the subject the producer would have
// used (job.DelaySubject), and acks it. Producers that go through package
// producer never send such a job: it reaches a worker only when published
// straight on jobs.<provider>.<lane>.<task> (nats pub) with a not_before
// ahead.
//
// Converting it, rather than naking it with a delay until it is due,
// spends no deliveries, holds no place in the consumer's max_ack_pending,
// and survives the loss of every worker. A worker that dies between the
// publish and the ack has the message redelivered, and publishing it
// again replaces the same schedule. If the schedule cannot be stored (the
// stream does not allow schedules, NATS is away), the job is naked until
// its not_before instead, as before there were schedules: that spends one
// delivery, which process does not count as an attempt.
func (w *Worker) reschedule(ctx context.Context, d delivery, j *job.Job) {
	m := &nats.Msg{Subject: job.DelaySubject(d.lane, j), Data: d.msg.Data(), Header: nats.Header{}}
	for k, v := range d.msg.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			m.Header[k] = v // the producer's own headers travel on
		}
	}
	m.Header.Set("Nats-Schedule", "@at "+j.NotBefore.UTC().Format(time.RFC3339Nano))
	m.Header.Set("Nats-Schedule-Target", d.msg.Subject())
	m.Header.Set(job.HeaderJobID, j.ID)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if _, err := w.pub.store(pctx, m); err != nil {
		wait := time.Until(*j.NotBefore) + 10*time.Millisecond
		w.logger.Warn("could not hold a job as a schedule until its not_before; naking it until then instead", "job_id", j.ID, "not_before", j.NotBefore, "err", err)
		_ = d.msg.NakWithDelay(wait)
		return
	}
	if err := d.msg.Ack(); err != nil {
		w.logger.Warn("ack a job turned into a schedule", "job_id", j.ID, "err", err)
	}
	w.logger.Debug("job not due yet: held as a schedule", "job_id", j.ID, "not_before", j.NotBefore, "schedule", m.Subject)
}
