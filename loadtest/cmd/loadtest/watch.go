package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	// The recorder's SQLite driver, pure Go.
	_ "modernc.org/sqlite"
)

// openResults opens the recorder's SQLite file read-only. The recorder is
// the only writer; WAL lets this reader run beside it without blocking it.
func openResults(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	u := url.URL{Path: abs}
	db, err := sql.Open("sqlite", "file:"+u.EscapedPath()+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// progress counts a batch's rows in the results database as they arrive,
// without rescanning what it has already counted: counting half a million
// rows takes ~100 ms of CPU each time, which polled four times a second
// would steal a good part of a core from the system under test.
//
// It relies on two properties of the recorder's jobs table: it is a rowid
// table that nothing deletes from, so each new row gets a rowid above
// every committed one; and a row that is final never turns non-final
// (an upsert keeps the row's rowid and only ever raises its rank). So each
// poll reads only the rows above the highest rowid seen so far, plus the
// few rows seen earlier while still retrying.
type progress struct {
	db    *sql.DB
	batch string

	// lo is the highest rowid counted; rows at or below it are in final or
	// pending.
	lo int64
	// final counts final rows by lane.
	final map[string]int
	// pending holds the rowid and lane of rows seen while not final.
	pending map[int64]string
}

func newProgress(db *sql.DB, batch string) *progress {
	return &progress{db: db, batch: batch, final: map[string]int{}, pending: map[int64]string{}}
}

// Final is the number of final rows in lane.
func (p *progress) Final(lane string) int { return p.final[lane] }

// TotalFinal is the number of final rows in every lane.
func (p *progress) TotalFinal() int {
	n := 0
	for _, c := range p.final {
		n += c
	}
	return n
}

// Pending is the number of rows recorded but not final (retrying).
func (p *progress) Pending() int { return len(p.pending) }

// skipExisting starts counting after the rows already in the database:
// the batch is new, so none of them can be its, and a results file reused
// across runs (connect mode) is then not scanned even once.
func (p *progress) skipExisting(ctx context.Context) error {
	if err := p.db.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) FROM jobs`).Scan(&p.lo); err != nil {
		return fmt.Errorf("poll results: %w", err)
	}
	return nil
}

// poll brings the counts up to date, reading one snapshot of the database.
func (p *progress) poll(ctx context.Context) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("poll results: %w", err)
	}
	defer tx.Rollback() // a read: nothing to undo

	var hi int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(rowid), 0) FROM jobs`).Scan(&hi); err != nil {
		return fmt.Errorf("poll results: %w", err)
	}
	if hi > p.lo {
		// NOT INDEXED makes SQLite walk the rowid range instead of the
		// (batch, status) index, which would visit the whole batch.
		rows, err := tx.QueryContext(ctx, `
			SELECT lane, final, count(*) FROM jobs NOT INDEXED
			WHERE rowid > ? AND rowid <= ? AND batch = ? GROUP BY lane, final`, p.lo, hi, p.batch)
		if err != nil {
			return fmt.Errorf("poll results: %w", err)
		}
		notFinal := 0
		for rows.Next() {
			var lane string
			var final, n int
			if err := rows.Scan(&lane, &final, &n); err != nil {
				rows.Close()
				return fmt.Errorf("poll results: %w", err)
			}
			if final == 1 {
				p.final[lane] += n
			} else {
				notFinal += n
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("poll results: %w", err)
		}
		if notFinal > 0 {
			if err := p.addPending(ctx, tx, hi); err != nil {
				return err
			}
		}
	}
	if len(p.pending) > 0 {
		if err := p.recheckPending(ctx, tx); err != nil {
			return err
		}
	}
	p.lo = hi
	return nil
}

func (p *progress) addPending(ctx context.Context, tx *sql.Tx, hi int64) error {
	rows, err := tx.QueryContext(ctx, `
		SELECT rowid, lane FROM jobs NOT INDEXED
		WHERE rowid > ? AND rowid <= ? AND batch = ? AND final = 0`, p.lo, hi, p.batch)
	if err != nil {
		return fmt.Errorf("poll results: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var lane string
		if err := rows.Scan(&id, &lane); err != nil {
			return fmt.Errorf("poll results: %w", err)
		}
		p.pending[id] = lane
	}
	return rows.Err()
}

// recheckPending moves the pending rows that have become final.
func (p *progress) recheckPending(ctx context.Context, tx *sql.Tx) error {
	var ids strings.Builder
	ids.WriteByte('[')
	first := true
	for id := range p.pending {
		if !first {
			ids.WriteByte(',')
		}
		first = false
		ids.WriteString(strconv.FormatInt(id, 10))
	}
	ids.WriteByte(']')
	rows, err := tx.QueryContext(ctx, `
		SELECT jobs.rowid FROM json_each(?) AS ids JOIN jobs ON jobs.rowid = ids.value
		WHERE jobs.final = 1`, ids.String())
	if err != nil {
		return fmt.Errorf("poll results: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("poll results: %w", err)
		}
		p.final[p.pending[id]]++
		delete(p.pending, id)
	}
	return rows.Err()
}

// Sample is the state of a run once a second, kept in report.json and
// drawn in chart.png.
type Sample struct {
	// T is seconds since the first publish.
	T float64 `json:"t"`
	// Enqueued counts PubAcks of main-lane jobs.
	Enqueued int64 `json:"enqueued"`
	// Recorded counts final rows, every lane.
	Recorded int `json:"recorded"`
	// Retrying counts rows recorded but not final.
	Retrying int `json:"retrying"`
	// Rate is rows that became final per second since the previous sample.
	Rate float64 `json:"rate"`
	// MockInFlight and MockRequests are the mock API's counters (-1 when
	// unavailable).
	MockInFlight int64 `json:"mock_in_flight"`
	MockRequests int64 `json:"mock_requests"`
	// Pending and AckPending are the main lane's work consumer's
	// num_pending and num_ack_pending (-1 when unavailable).
	Pending    int64 `json:"pending"`
	AckPending int64 `json:"ack_pending"`
}

// sampler takes the once-a-second samples.
type sampler struct {
	mock     *mockClient
	consumer jetstream.Consumer // may be nil
	provider string
	samples  []Sample
}

// take records one sample. A failed look-up leaves -1 in its field: a
// sample is worth keeping even when the mock or NATS is slow to answer.
func (s *sampler) take(ctx context.Context, t float64, enqueued int64, p *progress) Sample {
	smp := Sample{T: t, Enqueued: enqueued, Recorded: p.TotalFinal(), Retrying: p.Pending(),
		MockInFlight: -1, MockRequests: -1, Pending: -1, AckPending: -1}
	if st, err := s.mock.Stats(ctx); err == nil {
		ps, ok := st.Providers[s.provider]
		if !ok {
			ps = st.Total
		}
		smp.MockInFlight, smp.MockRequests = ps.InFlight, ps.Requests
	}
	if s.consumer != nil {
		if info, err := s.consumer.Info(ctx); err == nil {
			smp.Pending, smp.AckPending = int64(info.NumPending), int64(info.NumAckPending)
		}
	}
	if n := len(s.samples); n > 0 {
		prev := s.samples[n-1]
		if dt := smp.T - prev.T; dt > 0 {
			smp.Rate = float64(smp.Recorded-prev.Recorded) / dt
		}
	} else if smp.T > 0 {
		smp.Rate = float64(smp.Recorded) / smp.T
	}
	s.samples = append(s.samples, smp)
	return smp
}
