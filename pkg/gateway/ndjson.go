package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-io/switchyard/pkg/producer"
)

// answerTimeout is how long an NDJSON request may take to write its
// answer, after its jobs' outcomes are known.
const answerTimeout = 30 * time.Second

// postNDJSON publishes a stream of jobs, one per line, as it reads them:
// at most Window jobs await their acknowledgement at once, so memory is
// bounded by Window and MaxBody whatever the length of the stream. Bad
// lines are reported and skipped; the stream stops at the first job
// JetStream could not store for now (unavailable, stream full), and is
// answered 503 with the line to resume from.
func (h *Handler) postNDJSON(w http.ResponseWriter, r *http.Request, in ingest) {
	if r.ContentLength > h.cfg.MaxStreamBytes {
		writeProblem(w, newProblem(r, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"the stream is %d bytes, over %d (gateway.max_stream_bytes); nothing was enqueued: send it in parts", r.ContentLength, h.cfg.MaxStreamBytes)))
		return
	}
	rc := http.NewResponseController(w)
	if err := h.startStream(rc); err != nil {
		h.retryLater(w)
		writeProblem(w, newProblem(r, http.StatusServiceUnavailable, err.Error()+"; send the stream again after Retry-After"))
		return
	}
	defer h.endStream(rc)
	// The server's timeouts are for one application/json request; a
	// stream gets StreamTimeout to be read, then the publish timeout for
	// its last jobs, then time to write its answer.
	readBy := time.Now().Add(h.cfg.StreamTimeout)
	_ = rc.SetReadDeadline(readBy)
	_ = rc.SetWriteDeadline(readBy.Add(h.cfg.PublishTimeout + answerTimeout))
	// Not cancelled with the request: a failed read (a client gone, or
	// Drain) cancels that, and the jobs already sent should still get
	// their outcome, to be answered or at least logged.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(r.Context()), readBy.Add(h.cfg.PublishTimeout))
	defer cancel()

	t := &tally{}
	pl := h.p.Pipeline(ctx, producer.Window(h.cfg.Window), producer.OnResult(t.add))
	br := bufio.NewReaderSize(http.MaxBytesReader(w, r.Body, h.cfg.MaxStreamBytes), 64<<10)
	var buf []byte
	var readErr error
	lines := 0
	for !t.halted.Load() && !h.drained.Load() {
		var tooLong bool
		buf, tooLong, readErr = readLine(br, buf[:0], h.cfg.MaxBody)
		if readErr != nil {
			break
		}
		lines++
		n := lines
		line := bytes.TrimSpace(buf)
		switch {
		case tooLong:
			t.fail(LineError{Line: n, Status: StatusTooLarge, Error: fmt.Sprintf("the line is over %d bytes (gateway.max_body)", h.cfg.MaxBody)})
			continue
		case len(line) == 0:
			continue
		}
		j, problems := prepare(line, in, strconv.Itoa(n))
		if len(problems) > 0 {
			le := LineError{Line: n, Status: StatusInvalid, Error: problems[0].Error()}
			if j != nil {
				le.ID = j.ID
			}
			for _, p := range problems {
				le.InvalidParams = append(le.InvalidParams, InvalidParam{Name: fieldName("", p.Field), Reason: p.Reason})
			}
			t.fail(le)
			continue
		}
		if _, err := pl.Add(j, producer.Lane(in.lane), producer.Ref(n)); err != nil {
			status, msg := classify(err)
			t.fail(LineError{Line: n, ID: j.ID, Status: status, Error: msg})
			if ctx.Err() != nil {
				break
			}
		}
	}
	pl.Wait()
	rep := t.report(lines)

	if rep.ResumeLine == 0 && readErr == io.EOF {
		writeBody(w, http.StatusOK, "application/json", rep)
		return
	}
	var p *Problem
	_, tooBig := errors.AsType[*http.MaxBytesError](readErr)
	switch {
	case rep.ResumeLine > 0:
		h.retryLater(w)
		p = newProblem(r, http.StatusServiceUnavailable, fmt.Sprintf(
			"JetStream is unavailable or the JOBS stream is full; stopped at line %d: send the stream again from resume_line after Retry-After", rep.ResumeLine))
	case tooBig:
		p = newProblem(r, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"the stream is over %d bytes (gateway.max_stream_bytes); the lines before resume_line were handled: send the rest in another request", h.cfg.MaxStreamBytes))
	case h.drained.Load():
		h.retryLater(w)
		p = newProblem(r, http.StatusServiceUnavailable, errDraining.Error()+"; send the stream again from resume_line after Retry-After")
	case errors.Is(readErr, os.ErrDeadlineExceeded):
		p = newProblem(r, http.StatusRequestTimeout, fmt.Sprintf(
			"the stream took over %s to read (gateway.stream_timeout); send the rest from resume_line in another request", h.cfg.StreamTimeout))
	case readErr != nil:
		p = newProblem(r, http.StatusBadRequest, "reading the stream: "+readErr.Error()+"; send the rest from resume_line")
	default:
		h.retryLater(w)
		p = newProblem(r, http.StatusServiceUnavailable, "the stream took too long to publish; send the rest from resume_line after Retry-After")
	}
	if rep.ResumeLine == 0 {
		rep.ResumeLine = lines + 1
	}
	if p.Status >= 500 {
		h.logger.Warn("gateway: stream stopped", "status", p.Status, "lines", lines, "resume_line", rep.ResumeLine, "detail", p.Detail)
	}
	p.StreamReport = &rep
	writeProblem(w, p)
}

// tally collects the outcomes of a stream's jobs. add runs on the
// producer's goroutines.
type tally struct {
	// halted is set by the first job JetStream could not store for now:
	// the stream stops reading.
	halted atomic.Bool

	mu     sync.Mutex
	rep    StreamReport
	resume int // the first line not stored for now; 0 if none
}

func (t *tally) add(r producer.Result) {
	status, msg := outcome(r)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch status {
	case StatusStored:
		t.rep.Stored++
		return
	case StatusDuplicate:
		t.rep.Duplicates++
		return
	}
	t.failLocked(LineError{Line: r.Ref.(int), ID: r.ID, Status: status, Error: msg})
}

func (t *tally) fail(le LineError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failLocked(le)
}

func (t *tally) failLocked(le LineError) {
	t.rep.Failed++
	if le.Status == StatusUnavailable {
		t.halted.Store(true)
		if t.resume == 0 || le.Line < t.resume {
			t.resume = le.Line
		}
	}
	if len(t.rep.Errors) < MaxReportedErrors {
		t.rep.Errors = append(t.rep.Errors, le)
	} else {
		t.rep.ErrorsTruncated = true
	}
}

// report is the tally once every job's outcome is in.
func (t *tally) report(lines int) StreamReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	rep := t.rep
	rep.Lines = lines
	rep.ResumeLine = t.resume
	return rep
}

// readLine reads the next line into buf, without its line feed. A line
// longer than max bytes is read to its end but not kept: tooLong is true
// and line empty. The last line of the stream needs no line feed; after
// it, err is io.EOF. A line cut by a read error is dropped with the error.
func readLine(br *bufio.Reader, buf []byte, max int64) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			if int64(len(buf)+len(bytes.TrimRight(frag, "\r\n"))) > max {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, frag...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && (len(buf) > 0 || tooLong):
			return buf, tooLong, nil
		case err != nil:
			return buf[:0], false, err
		case tooLong:
			return buf, true, nil
		}
		return buf[:len(buf)-1], false, nil
	}
}
