package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/producer"
	"github.com/switchyard-io/switchyard/streams"
)

const enqueueUsage = `Usage:
  switchyard enqueue [flags] FILE      FILE is NDJSON (one job envelope per line) or CSV; - reads stdin

NDJSON: each line is a v1 job envelope (streams/job.schema.json); the lane
comes from --lane.

CSV: the first row names the columns; every other row fills --template, a
job envelope in which "{{column}}" inside any string is replaced by that
column's text, and a string that is exactly "{{column:json}}" by the
column's raw JSON value (a number, true, an object...; empty means null).
--provider, --task and --batch fill the template's fields it leaves out.

Ids: a job's own id, else --id-column (CSV), else one derived from the
job's content (a UUIDv5 of the envelope, after --id-prefix), never random:
running the same input again within the JOBS stream's dedup window
enqueues nothing twice. Identical lines are one job.

Batches: --batch names the batch of every job that has none; --declare then
declares it with the number of its jobs once the load is done, and the
recorder publishes events.batch.<id>.completed when every one is final
(watch it with: switchyard batch status <id> --wait).

Flags:
`

// enqueueOptions are the flags of `switchyard enqueue` that are not config
// keys.
type enqueueOptions struct {
	format        string
	template      string
	idColumn      string
	idPrefix      string
	provider      string
	task          string
	lane          string
	batch         string
	window        int
	applyStreams  bool
	declare       bool
	progressEvery time.Duration
}

func runEnqueue(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchyard enqueue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, enqueueUsage)
		fs.PrintDefaults()
	}
	flags := service.NewFlags(fs)
	flags.Key("server", "nats.url", "", "NATS server `URL`s, comma separated (default $NATS_URL, else nats://127.0.0.1:4222; env SWITCHYARD_NATS__URL)")
	flags.Key("creds", "nats.creds_file", "", "NATS credentials `file`")
	flags.Key("user", "nats.user", "", "NATS `user`")
	flags.Key("password", "nats.password", "", "NATS `password`")
	flags.Key("nats-token", "nats.token", "", "NATS `token`")
	var o enqueueOptions
	fs.StringVar(&o.format, "format", "auto", "input `format`: ndjson, csv, or auto (csv with --template or a .csv name)")
	fs.StringVar(&o.template, "template", "", "job envelope `file` with {{column}} placeholders (CSV)")
	fs.StringVar(&o.idColumn, "id-column", "", "CSV `column` holding each job's id")
	fs.StringVar(&o.idPrefix, "id-prefix", "", "`prefix` of ids derived from content (change it to enqueue the same jobs again)")
	fs.StringVar(&o.provider, "provider", "", "`provider` of CSV jobs, when the template has none")
	fs.StringVar(&o.task, "task", "", "`task` of CSV jobs, when the template has none")
	fs.StringVar(&o.lane, "lane", string(job.LaneBulk), "`lane` of every job: live or bulk")
	fs.StringVar(&o.batch, "batch", "", "`batch` of every job that has none")
	fs.IntVar(&o.window, "window", producer.DefaultWindow, "at most `N` jobs awaiting the stream's acknowledgement")
	fs.BoolVar(&o.declare, "declare", false, "with --batch: once loaded, declare the batch with the number of its jobs, so the recorder announces when every one is final")
	fs.BoolVar(&o.applyStreams, "apply-streams", false, "create or update the Switchyard streams first (needs the permission to)")
	fs.DurationVar(&o.progressEvery, "progress-every", 5*time.Second, "when stderr is not a terminal, print progress this `often` (0: never)")

	rest, err := parseEnqueueArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		fs.Usage()
		return errors.New("enqueue: give one input FILE, or - for stdin")
	}
	input := rest[0]
	if err := o.validate(input); err != nil {
		return err
	}
	var defaults map[string]any
	if u := os.Getenv("NATS_URL"); u != "" {
		defaults = map[string]any{"nats.url": u}
	}
	cfg, logger, err := flags.Load(stderr, defaults)
	if err != nil {
		return err
	}

	in, name, total, err := openInput(input, stdin, o.format == "csv")
	if err != nil {
		return err
	}
	defer in.Close()
	src, err := o.source(in)
	if err != nil {
		return err
	}

	natsCfg := cfg.NATS
	natsCfg.Name = "switchyard enqueue"
	nc, err := natsx.Connect(natsCfg, logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	dedupNote, err := checkJobsStream(ctx, nc, natsCfg, o.applyStreams, logger)
	if err != nil {
		return err
	}
	p, err := producer.New(nc, producer.WithLogger(logger),
		// A loader keeps trying while the server is away: it shows so on
		// the progress line, and Ctrl-C stops it.
		producer.WithRetryFor(0))
	if err != nil {
		return err
	}

	fmt.Fprintf(stderr, "enqueue: %s → %s, lane %s%s\n", name, nc.ConnectedUrlRedacted(), o.lane, dedupNote)
	l := &loader{}
	if o.declare {
		l.declareBatch, l.ids = o.batch, map[string]struct{}{}
	}
	pl := p.Pipeline(ctx, producer.Window(o.window), producer.OnResult(l.onResult),
		producer.Defaults(producer.Lane(job.Lane(o.lane)), producer.IDFromContent(o.idPrefix)))
	pr := newProgress(stderr, total, o.progressEvery, func() progressState {
		s := pl.Stats()
		l.mu.Lock()
		defer l.mu.Unlock()
		return progressState{done: s.Stored + s.Duplicates + s.Failed + l.early, failed: s.Failed + l.early, duplicates: s.Duplicates, pending: s.Pending(), retries: s.Retries, lastErr: s.LastError}
	})
	start := time.Now()
	stopProgress := pr.start()
	readErr := l.load(ctx, src, pl, o.batch, max(runtime.GOMAXPROCS(0), 2))
	sum := pl.Wait()
	stopProgress()
	if err := l.report(stdout, sum, time.Since(start), readErr, ctx.Err()); err != nil || !o.declare {
		return err
	}
	return l.declare(ctx, stdout, p)
}

// declare declares the loaded batch with the number of its distinct jobs,
// stored now or already: a re-run of the same file declares the same size.
func (l *loader) declare(ctx context.Context, w io.Writer, p *producer.Producer) error {
	l.mu.Lock()
	n := len(l.ids)
	l.mu.Unlock()
	if n == 0 {
		return fmt.Errorf("enqueue: --declare: no job of batch %s was enqueued", l.declareBatch)
	}
	if err := p.DeclareBatch(ctx, l.declareBatch, n); err != nil {
		return fmt.Errorf("enqueue: --declare: %w", err)
	}
	fmt.Fprintf(w, "batch %s declared with %s jobs: events.batch.%s.completed follows when every one is final (switchyard batch status %s --wait)\n",
		l.declareBatch, commas(n), l.declareBatch, l.declareBatch)
	return nil
}

// parseEnqueueArgs parses flags placed before and after the input name.
func parseEnqueueArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func (o *enqueueOptions) validate(input string) error {
	if o.format == "auto" {
		o.format = "ndjson"
		if o.template != "" || strings.EqualFold(filepath.Ext(input), ".csv") {
			o.format = "csv"
		}
	}
	switch {
	case o.format != "ndjson" && o.format != "csv":
		return fmt.Errorf("enqueue: --format %q: want ndjson, csv or auto", o.format)
	case o.format == "csv" && o.template == "":
		return errors.New("enqueue: CSV input needs --template, a job envelope with {{column}} placeholders")
	case o.format == "ndjson" && (o.template != "" || o.idColumn != "" || o.provider != "" || o.task != ""):
		return errors.New("enqueue: --template, --id-column, --provider and --task are for CSV input; NDJSON lines are whole envelopes")
	case !job.Lane(o.lane).Valid():
		return fmt.Errorf("enqueue: --lane %q: want live or bulk", o.lane)
	case o.batch != "" && (&job.Job{V: 1, ID: "x", Provider: "p", Task: "t", Batch: o.batch, Request: job.Request{Path: "/"}}).Validate() != nil:
		return fmt.Errorf("enqueue: --batch %q: want 1-128 characters of [A-Za-z0-9_-]", o.batch)
	case o.declare && o.batch == "":
		return errors.New("enqueue: --declare needs --batch: it declares that batch")
	case o.window < 1:
		return fmt.Errorf("enqueue: --window %d must be at least 1", o.window)
	case o.idPrefix != "" && !job.ValidID(o.idPrefix):
		return fmt.Errorf("enqueue: --id-prefix %q: want characters of [A-Za-z0-9._:-]", o.idPrefix)
	}
	return nil
}

// checkJobsStream makes sure JOBS exists (creating the streams with
// --apply-streams) and describes its dedup window for the first line of
// output.
func checkJobsStream(ctx context.Context, nc *nats.Conn, cfg natsx.Config, apply bool, logger *slog.Logger) (string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if apply {
		if err := natsx.ApplyStreams(cctx, js, cfg.Replicas, logger); err != nil {
			return "", fmt.Errorf("enqueue: apply streams: %w", err)
		}
	}
	s, err := js.Stream(cctx, streams.Jobs)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return "", fmt.Errorf("enqueue: no %s stream on %s: start a Switchyard worker or `switchyard dev` first, or pass --apply-streams", streams.Jobs, nc.ConnectedUrlRedacted())
	case err != nil:
		// Perhaps the credentials may publish but not look: go on.
		logger.Warn("cannot look up the JOBS stream; publishing anyway", "err", err)
		return "", nil
	}
	c := s.CachedInfo().Config
	return fmt.Sprintf(" (stream %s deduplicates ids over %s)", c.Name, c.Duplicates), nil
}

// openInput opens path ("-" for stdin) and counts its data rows when it is
// a regular file, so progress can show a total and an ETA; 0 means
// unknown.
func openInput(path string, stdin io.Reader, header bool) (io.ReadCloser, string, int, error) {
	var f *os.File
	name := path
	if path == "-" {
		name = "stdin"
		sf, ok := stdin.(*os.File)
		if !ok {
			return io.NopCloser(stdin), name, 0, nil
		}
		f = sf
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, "", 0, fmt.Errorf("enqueue: %w", err)
		}
	}
	rc := io.ReadCloser(f)
	if path == "-" {
		rc = io.NopCloser(f)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return rc, name, 0, nil
	}
	n, err := countLines(f)
	if err != nil {
		rc.Close()
		return nil, "", 0, fmt.Errorf("enqueue: read %s: %w", name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		// Not seekable after all: the count cost a pass we cannot undo.
		rc.Close()
		return nil, "", 0, fmt.Errorf("enqueue: rewind %s: %w", name, err)
	}
	if header && n > 0 {
		n--
	}
	return rc, name, n, nil
}

// countLines counts the lines of r, a last one without a newline included.
func countLines(r io.Reader) (int, error) {
	buf := make([]byte, 256<<10)
	n, last := 0, byte('\n')
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += bytes.Count(buf[:k], []byte{'\n'})
			last = buf[k-1]
		}
		if err == io.EOF {
			if last != '\n' {
				n++
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// jobSource reads job envelopes.
type jobSource interface {
	// next appends the next envelope to buf and returns buf grown, the
	// line the envelope starts on, and what is wrong with that line if
	// anything (bad). err is io.EOF at the end, or a failure to read that
	// stops the load.
	next(buf []byte) (out []byte, line int, bad, err error)
}

func (o *enqueueOptions) source(in io.Reader) (jobSource, error) {
	if o.format == "ndjson" {
		return &ndjsonSource{r: bufio.NewReaderSize(in, 1<<20)}, nil
	}
	tmpl, err := os.ReadFile(o.template)
	if err != nil {
		return nil, fmt.Errorf("enqueue: --template: %w", err)
	}
	return newCSVSource(in, tmpl, o)
}

// maxLine bounds an input line; a job envelope is far smaller (JOBS takes
// at most 512 KiB per message).
const maxLine = 8 << 20

var errLineTooLong = fmt.Errorf("line longer than %d MiB", maxLine>>20)

type ndjsonSource struct {
	r    *bufio.Reader
	line int
	long []byte
}

func (s *ndjsonSource) next(buf []byte) ([]byte, int, error, error) {
	for {
		data, err := s.readLine()
		if len(data) == 0 && errors.Is(err, io.EOF) {
			return buf, 0, nil, io.EOF
		}
		s.line++
		switch {
		case errors.Is(err, errLineTooLong):
			return buf, s.line, err, nil
		case err != nil && !errors.Is(err, io.EOF):
			return buf, s.line, nil, fmt.Errorf("read line %d: %w", s.line, err)
		}
		if data = bytes.TrimSpace(data); len(data) > 0 {
			return append(buf, data...), s.line, nil, nil
		}
	}
}

// readLine returns the next line, valid until the next call.
func (s *ndjsonSource) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	s.long = append(s.long[:0], line...)
	for {
		line, err = s.r.ReadSlice('\n')
		if len(s.long)+len(line) > maxLine {
			for errors.Is(err, bufio.ErrBufferFull) { // skip to the end of it
				_, err = s.r.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return []byte{'x'}, errLineTooLong
		}
		s.long = append(s.long, line...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return s.long, err
		}
	}
}

type csvSource struct {
	r    *csv.Reader
	tmpl *csvTemplate
}

func newCSVSource(in io.Reader, tmpl []byte, o *enqueueOptions) (*csvSource, error) {
	r := csv.NewReader(bufio.NewReaderSize(in, 1<<20))
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("enqueue: the CSV input is empty: it needs a header row")
	}
	if err != nil {
		return nil, fmt.Errorf("enqueue: CSV header: %w", err)
	}
	header = slices.Clone(header)
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	t, err := compileTemplate(tmpl, header, o)
	if err != nil {
		return nil, fmt.Errorf("enqueue: --template %s: %w", o.template, err)
	}
	return &csvSource{r: r, tmpl: t}, nil
}

func (s *csvSource) next(buf []byte) ([]byte, int, error, error) {
	row, err := s.r.Read()
	if errors.Is(err, io.EOF) {
		return buf, 0, nil, io.EOF
	}
	if pe, ok := errors.AsType[*csv.ParseError](err); ok {
		return buf, pe.StartLine, fmt.Errorf("CSV: %w", pe.Err), nil
	}
	if err != nil {
		return buf, 0, nil, err
	}
	line, _ := s.r.FieldPos(0)
	start := len(buf)
	out, err := s.tmpl.render(buf, row)
	if err != nil {
		return out[:start], line, err, nil
	}
	return out, line, nil, nil
}

// csvTemplate is a job envelope as JSON text cut at its placeholders, so
// that a row costs appends and one decode.
type csvTemplate struct {
	segs []tmplSegment
	tail []byte
}

type tmplSegment struct {
	lit  []byte // JSON text before the placeholder
	col  int
	name string
	raw  bool // the value is JSON, replacing the whole string
}

var placeholder = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// envelopeFields are the top-level fields of a v1 envelope.
var envelopeFields = []string{"v", "id", "provider", "task", "request", "batch", "max_attempts", "not_before", "expires_at", "meta"}

func compileTemplate(src []byte, header []string, o *enqueueOptions) (*csvTemplate, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	for k := range m {
		if !slices.Contains(envelopeFields, k) {
			hint := ""
			if k == "lane" {
				hint = " (the lane is not part of the envelope: use --lane)"
			}
			return nil, fmt.Errorf("unknown field %q%s", k, hint)
		}
	}
	if _, ok := m["v"]; !ok {
		m["v"] = job.Version
	}
	for _, f := range []struct{ key, flag, value string }{
		{"provider", "provider", o.provider}, {"task", "task", o.task}, {"batch", "batch", o.batch},
	} {
		have, ok := m[f.key]
		switch {
		case !ok && f.value == "" && f.key != "batch":
			return nil, fmt.Errorf("no %s: add one, or pass --%s", f.key, f.flag)
		case !ok && f.value != "":
			m[f.key] = f.value
		case ok && f.value != "" && have != f.value:
			return nil, fmt.Errorf("%s is %v, --%s says %q: set it in one place", f.key, have, f.flag, f.value)
		}
	}
	id, hasID := m["id"].(string)
	switch {
	case o.idColumn != "" && hasID:
		return nil, errors.New("sets an id and --id-column is given: set it in one place")
	case o.idColumn != "":
		m["id"] = "{{" + o.idColumn + "}}"
	case hasID && !placeholder.MatchString(id):
		return nil, fmt.Errorf("id %q is the same for every row: use a {{column}}, --id-column, or no id for ids derived from each row", id)
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	text := bytes.TrimSpace(buf.Bytes())
	t := &csvTemplate{}
	at := 0
	for _, loc := range placeholder.FindAllSubmatchIndex(text, -1) {
		start, end := loc[0], loc[1]
		name := string(text[loc[2]:loc[3]])
		seg := tmplSegment{name: name}
		if n, ok := strings.CutSuffix(name, ":json"); ok {
			if start == 0 || text[start-1] != '"' || end >= len(text) || text[end] != '"' {
				return nil, fmt.Errorf("{{%s}} must be a whole string value (\"{{%s}}\")", name, name)
			}
			seg.name, seg.raw = strings.TrimSpace(n), true
			start, end = start-1, end+1
		}
		seg.col = slices.Index(header, seg.name)
		if seg.col < 0 {
			return nil, fmt.Errorf("{{%s}} names no column of the CSV header (%s)", seg.name, strings.Join(header, ", "))
		}
		seg.lit = text[at:start]
		t.segs = append(t.segs, seg)
		at = end
	}
	t.tail = text[at:]
	return t, nil
}

// render appends the envelope for one CSV row to dst.
func (t *csvTemplate) render(dst []byte, row []string) ([]byte, error) {
	for _, s := range t.segs {
		dst = append(dst, s.lit...)
		v := row[s.col]
		if !s.raw {
			dst = appendJSONText(dst, v)
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			dst = append(dst, "null"...)
		case json.Valid([]byte(v)):
			dst = append(dst, v...)
		default:
			return dst, fmt.Errorf("column %s: %q is not a JSON value (it fills {{%s:json}})", s.name, v, s.name)
		}
	}
	return append(dst, t.tail...), nil
}

// appendJSONText appends s escaped for the inside of a JSON string.
func appendJSONText(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return dst
}

// keepFailures is how many failing lines the summary shows.
const keepFailures = 10

type lineFailure struct {
	line int
	err  error
}

// loader feeds a pipeline from a source: one goroutine reads envelopes in
// chunks, and a few decode them and add them to the pipeline, so that a
// load uses every core the server leaves free.
type loader struct {
	pool sync.Pool // of *chunk

	// declareBatch is the batch of --declare; ids collects the ids of its
	// jobs that are in the stream.
	declareBatch string

	mu       sync.Mutex
	early    int // lines that failed before a publish
	failures []lineFailure
	ids      map[string]struct{}
}

// lineRef rides with each job through the pipeline to its result.
type lineRef struct {
	line    int
	inBatch bool // of the batch to declare
}

// chunk is a run of envelopes read from the input.
type chunk struct {
	buf   []byte
	items []chunkItem
}

type chunkItem struct {
	line       int
	start, end int // of the envelope in buf
	bad        error
}

const chunkLines = 256

// load reads src to its end, or until ctx ends, adding every job to pl.
// It returns the error that stopped the reading, if any.
func (l *loader) load(ctx context.Context, src jobSource, pl *producer.Pipeline, batch string, workers int) error {
	chunks := make(chan *chunk, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { l.work(ctx, chunks, pl, batch) })
	}
	err := l.read(ctx, src, chunks)
	close(chunks)
	wg.Wait()
	return err
}

func (l *loader) read(ctx context.Context, src jobSource, out chan<- *chunk) error {
	for {
		c, _ := l.pool.Get().(*chunk)
		if c == nil {
			c = &chunk{}
		}
		c.buf, c.items = c.buf[:0], c.items[:0]
		var err error
		for len(c.items) < chunkLines {
			var line int
			var bad error
			start := len(c.buf)
			if c.buf, line, bad, err = src.next(c.buf); err != nil {
				break
			}
			c.items = append(c.items, chunkItem{line: line, start: start, end: len(c.buf), bad: bad})
		}
		if len(c.items) > 0 {
			select {
			case out <- c:
			case <-ctx.Done():
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (l *loader) work(ctx context.Context, in <-chan *chunk, pl *producer.Pipeline, batch string) {
	for c := range in {
		for _, it := range c.items {
			if ctx.Err() != nil {
				break // drain: the reader stops too
			}
			if it.bad != nil {
				l.fail(it.line, it.bad, true)
				continue
			}
			j, err := job.Decode(c.buf[it.start:it.end])
			if err != nil {
				l.fail(it.line, err, true)
				continue
			}
			if batch != "" && j.Batch == "" {
				j.Batch = batch
			}
			ref := lineRef{line: it.line, inBatch: l.declareBatch != "" && j.Batch == l.declareBatch}
			if _, err := pl.Add(j, producer.Ref(ref)); err != nil && ctx.Err() == nil {
				l.fail(it.line, err, true)
			}
		}
		l.pool.Put(c)
	}
}

func (l *loader) onResult(r producer.Result) {
	if r.Err != nil {
		l.fail(r.Ref.(lineRef).line, r.Err, false)
		return
	}
	if r.Ref.(lineRef).inBatch {
		l.mu.Lock()
		l.ids[r.ID] = struct{}{}
		l.mu.Unlock()
	}
}

// fail records a failed line, keeping the first keepFailures by line.
func (l *loader) fail(line int, err error, early bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if early {
		l.early++
	}
	l.failures = append(l.failures, lineFailure{line, err})
	if len(l.failures) >= 4*keepFailures {
		l.trimFailures()
	}
}

func (l *loader) trimFailures() {
	slices.SortFunc(l.failures, func(a, b lineFailure) int { return a.line - b.line })
	l.failures = l.failures[:min(len(l.failures), keepFailures)]
}

// report prints the summary and returns the command's error.
func (l *loader) report(w io.Writer, s producer.Summary, took time.Duration, readErr, ctxErr error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trimFailures()
	failed := s.Failed + l.early
	jobs := s.Added + l.early // lines that held a job, good or bad
	fmt.Fprintf(w, "%s jobs in %s (%s jobs/s)\n", commas(jobs), took.Round(time.Millisecond), commas(int(float64(jobs)/max(took.Seconds(), 1e-3))))
	fmt.Fprintf(w, "  enqueued    %12s\n", commas(s.Stored))
	fmt.Fprintf(w, "  duplicates  %12s   already in the stream, or repeated in the input: not enqueued again\n", commas(s.Duplicates))
	fmt.Fprintf(w, "  failed      %12s\n", commas(failed))
	for _, f := range l.failures {
		fmt.Fprintf(w, "    line %d: %v\n", f.line, f.err)
	}
	if more := failed - len(l.failures); more > 0 {
		fmt.Fprintf(w, "    … and %s more\n", commas(more))
	}
	switch {
	case ctxErr != nil:
		return fmt.Errorf("enqueue: interrupted after %s jobs (run it again: what is already enqueued is deduplicated)", commas(jobs))
	case readErr != nil:
		return fmt.Errorf("enqueue: stopped after %s jobs: %w", commas(jobs), readErr)
	case failed > 0:
		return fmt.Errorf("enqueue: %s of %s jobs failed", commas(failed), commas(jobs))
	}
	return nil
}

// progressState is what a progress line shows.
type progressState struct {
	done, failed, duplicates, pending, retries int
	lastErr                                    error
}

// progress draws a bar on a terminal, or prints a line now and then
// otherwise.
type progress struct {
	w       io.Writer
	tty     bool
	total   int
	every   time.Duration
	state   func() progressState
	started time.Time
}

func newProgress(w io.Writer, total int, every time.Duration, state func() progressState) *progress {
	pr := &progress{w: w, total: total, every: every, state: state}
	if f, ok := w.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		pr.tty, pr.every = true, 250*time.Millisecond
	}
	return pr
}

// start begins drawing; the func it returns stops and draws the last
// state.
func (pr *progress) start() func() {
	pr.started = time.Now()
	if pr.every <= 0 {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(pr.every)
		defer t.Stop()
		retries := 0
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			st := pr.state()
			line := pr.line(st, time.Since(pr.started), st.retries > retries)
			retries = st.retries
			if pr.tty {
				fmt.Fprintf(pr.w, "\r\x1b[K%s", line)
			} else {
				fmt.Fprintln(pr.w, "enqueue:", line)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if pr.tty {
			fmt.Fprintf(pr.w, "\r\x1b[K%s\n", pr.line(pr.state(), time.Since(pr.started), false))
		}
	}
}

// line describes st after elapsed; retrying says publishes are failing now.
func (pr *progress) line(st progressState, elapsed time.Duration, retrying bool) string {
	var b strings.Builder
	rate := float64(st.done) / max(elapsed.Seconds(), 1e-3)
	if pr.total > 0 {
		frac := min(float64(st.done)/float64(pr.total), 1)
		if pr.tty {
			const width = 24
			full := int(frac * width)
			b.WriteString("[" + strings.Repeat("█", full) + strings.Repeat("░", width-full) + "] ")
		}
		fmt.Fprintf(&b, "%s/%s jobs %5.1f%%  %s jobs/s", commas(st.done), commas(pr.total), 100*frac, commas(int(rate)))
		if rate > 0 && st.done < pr.total {
			eta := time.Duration(float64(pr.total-st.done) / rate * float64(time.Second))
			if eta < time.Second {
				b.WriteString("  ETA <1s")
			} else {
				fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
			}
		}
	} else {
		fmt.Fprintf(&b, "%s jobs  %s jobs/s", commas(st.done), commas(int(rate)))
	}
	fmt.Fprintf(&b, "  (duplicates %s, failed %s)", commas(st.duplicates), commas(st.failed))
	if retrying && st.lastErr != nil {
		fmt.Fprintf(&b, "  retrying %s: %v", commas(st.pending), st.lastErr)
	}
	return b.String()
}

// commas writes n with thousands separators.
func commas(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
