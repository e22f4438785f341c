package worker

import (
	"context"
	"time"

	"github.com/switchyard-io/switchyard/pkg/job"
)

// cancelled records the job of d cancelled, and reports true, when a
// tombstone of package cancel covers it or its batch. The tombstones are
// held in memory (cancel.Watcher), so the check costs no round trip.
func (w *Worker) cancelled(ctx context.Context, d delivery) bool {
	key, ok := w.cancels.Cancelled(d.job.ID, d.job.Batch)
	if !ok {
		return false
	}
	r := w.newResult(d, time.Time{}, time.Now())
	r.Status, r.ErrorClass, r.Error = job.StatusCancelled, job.ClassCancelled, "cancelled before its call ("+key+")"
	w.settle(ctx, d, outcome{result: r, action: actionAck})
	return true
}
