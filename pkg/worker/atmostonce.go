package worker

import (
	"context"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// ackBeforeCall starts an at-most-once call: it stores a provisional
// `unknown` result, then acks the message and waits for the server to
// confirm it, so that the job can never be delivered again. Only then may
// the call be made. It reports false, with the message handed back, when
// either step failed: the call must not be made then.
//
// The provisional result is what tells anyone that a worker died
// mid-call: its message id is <job>:<seq>:started and its attempt 0, and
// the call's own outcome (attempt 1 or later, and final) replaces it in
// the recorder, which never lets a non-final status replace a final one.
// If the worker dies before publishing that outcome, nothing else will,
// and the job stays `unknown`: the call may or may not have reached the
// provider, and nobody calls it again to find out.
//
// If the ack was applied but its confirmation lost, the message is not
// delivered again and the job stays `unknown` although it was never
// called; that is the safe side of the mistake.
func (w *Worker) ackBeforeCall(ctx context.Context, d *delivery) bool {
	pctx := context.WithoutCancel(ctx)
	r := w.newResult(*d, time.Time{}, time.Now())
	r.Attempt, r.Status = 0, job.StatusUnknown
	r.Error = "at most once: acked before the call; the call's outcome is not stored yet"
	if _, err := w.publishResult(pctx, msgID(r.JobID, d.seq, "started"), &r); err != nil {
		w.logger.Error("store at-most-once start; the job will be redelivered", "job_id", r.JobID, "err", err)
		_ = d.msg.NakWithDelay(time.Second)
		return false
	}
	actx, cancel := context.WithTimeout(pctx, publishTimeout)
	defer cancel()
	if err := d.msg.DoubleAck(actx); err != nil {
		w.logger.Error("ack at-most-once job before its call; not calling it", "job_id", r.JobID, "err", err)
		_ = d.msg.Nak()
		return false
	}
	d.acked = true
	return true
}

// handBack leaves a job whose outcome could not be stored for another
// delivery. An at-most-once job was acked already: it stays `unknown`.
func (w *Worker) handBack(d delivery, jobID string) {
	if d.acked {
		w.logger.Error("outcome of an at-most-once job not stored; it stays unknown", "job_id", jobID)
		return
	}
	_ = d.msg.NakWithDelay(time.Second)
}
