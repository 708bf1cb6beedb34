// Command stepcast-bench measures Stepcast on the machine it runs on, each
// figure next to a reference measured in the same run (issue 5):
//
//  1. webhook ingest: signed follow webhooks, open loop at -rate for
//     -duration, against the same load on GET /healthz;
//  2. enrollment: friends enrolled per second behind those follows, against
//     the server's rate of starting an empty workflow;
//  3. step delivery: -friends friends due at once, step sends per second at
//     the fake LINE, against a plain workflow in the Temporal samples' style
//     (a timer and an ordinary activity per step) on the same server;
//  4. footprint: history events of a 5-step enrollment, the worker's Go heap
//     with thousands of sleeping enrollments, database rows and bytes per
//     friend.
//
// It starts its own Temporal dev server from bin/temporal (or uses
// -temporal-address), its own PostgreSQL database, Stepcast's API and
// inbox dispatcher in this process and Stepcast's worker in a child
// process, and writes a Markdown report (see BENCHMARKS.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stepcast/stepcast/bench/internal/benchkit"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

type options struct {
	temporalAddr    string
	temporalMetrics string
	namespace       string
	temporalBin     string
	temporalDB      string
	postgresURL     string
	dbMaxOpen       int
	dbMaxIdle       int
	workerPollers   int
	lanes           int
	workerCache     int

	rate        float64
	duration    time.Duration
	refDuration time.Duration
	emptyN      int
	emptyBurst  int
	emptyConc   int
	directN     int
	cpuProfile  string
	friends     int
	steps       int
	sleepers    int
	footprintN  int
	drainWait   time.Duration

	phases  string
	report  string
	section string
	keepDB  bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker-child" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "stepcast-bench worker:", err)
			os.Exit(1)
		}
		return
	}
	gin.SetMode(gin.ReleaseMode)
	var o options
	flag.StringVar(&o.temporalAddr, "temporal-address", "", "use this Temporal frontend (host:port) instead of starting a dev server, e.g. a full server on PostgreSQL")
	flag.StringVar(&o.temporalMetrics, "temporal-metrics-url", "", "the Temporal server's Prometheus /metrics URL, for persistence requests per step (known for the dev server this program starts)")
	flag.StringVar(&o.namespace, "namespace", "default", "Temporal namespace")
	flag.StringVar(&o.temporalBin, "temporal-bin", "bin/temporal", "Temporal CLI that runs the dev server (make tools builds it)")
	flag.StringVar(&o.temporalDB, "temporal-db-file", "", "dev server: SQLite file for its state (default: in memory)")
	flag.StringVar(&o.postgresURL, "postgres-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server on which a fresh database is created and dropped")
	flag.IntVar(&o.dbMaxOpen, "db-max-open", 0, "experiment: open database connections each Stepcast process may have (0: as models.Open sets it, as in production)")
	flag.IntVar(&o.dbMaxIdle, "db-max-idle", 0, "experiment: idle database connections each Stepcast process keeps (0: as models.Open sets it, as in production)")
	flag.IntVar(&o.workerCache, "worker-cache", 0, "experiment: workflows the worker keeps in its sticky cache (0: the SDK's 10,000, as in production)")
	flag.IntVar(&o.lanes, "dispatcher-lanes", 0, "experiment: lanes of the inbox dispatcher (0: as inbox.NewDispatcher sets them, as in production)")
	flag.IntVar(&o.workerPollers, "worker-pollers", 0, "experiment: workflow and activity task pollers of Stepcast's worker (0: as worker.Options sets them, as in production)")
	flag.Float64Var(&o.rate, "rate", 500, "webhook requests per second (open loop)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long the webhook load runs")
	flag.DurationVar(&o.refDuration, "ref-duration", 20*time.Second, "how long the same load runs against GET /healthz, the ingest reference")
	flag.IntVar(&o.emptyN, "empty-workflows", 0, "empty workflows started for the enrollment reference (0: as many as the ingest's follows, -rate × -duration)")
	flag.IntVar(&o.emptyBurst, "empty-burst", 2000, "empty workflows started in a short burst, shown beside the reference")
	flag.IntVar(&o.directN, "direct-enrollments", 0, "experiment: after the reference, start this many Enrollment workflows (the 5-step welcome series, real input and search attributes) directly, the same way and on the same worker as the reference, to split target 2's gap into the workflow's own cost and the rest (0: off)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (load generator, API and dispatcher) from the first follow to the end of the ingest phase, for `go tool pprof`")
	flag.IntVar(&o.emptyConc, "empty-concurrency", 16, "goroutines starting them (the inbox dispatcher applies events in 16 lanes)")
	flag.IntVar(&o.friends, "friends", 5000, "friends due at the same moment in the step delivery test (and baseline workflows)")
	flag.IntVar(&o.steps, "steps", 1, "steps per friend in the delivery test; after the first (due at one moment for all), each is due 1s after the previous")
	flag.IntVar(&o.sleepers, "sleepers", 0, "top the sleeping enrollments up to this many for the memory figure (e.g. 100000; slow: it enrolls at the enrollment rate)")
	flag.IntVar(&o.footprintN, "footprint-friends", 3, "friends run through the 5-step footprint scenario")
	flag.DurationVar(&o.drainWait, "drain-timeout", 30*time.Minute, "how long to wait for a backlog to drain or sends to arrive")
	flag.StringVar(&o.phases, "phases", "footprint,ingest,delivery", "phases to run, in this order: footprint (history part of 4), ingest (1, 2, and the memory and database parts of 4), delivery (3)")
	flag.StringVar(&o.report, "report", "BENCHMARKS.md", "Markdown file whose section for this server the report replaces (empty: print only)")
	flag.StringVar(&o.section, "section", "", "report section name (default: dev-server, or external with -temporal-address)")
	flag.BoolVar(&o.keepDB, "keep-db", false, "keep the PostgreSQL database after the run")
	flag.Parse()
	if o.section == "" {
		o.section = "dev-server"
		if o.temporalAddr != "" {
			o.section = "external"
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepcast-bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	o       options
	sys     *system
	res     *results
	metrics string // Temporal server /metrics
	runID   string
	pids    []int
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) error {
	b := &bench{o: o, runID: benchkit.RandomHex(3), pids: []int{os.Getpid()}}
	b.res = &results{Cmdline: commandLine(), Started: time.Now(), Machine: readMachine(), LoadStart: loadAvg(), Opts: o, Code: codeVersion()}
	tmp, err := os.MkdirTemp("", "stepcast-bench-")
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(tmp, "bench.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn})).With("proc", "api")
	b.res.LogDir = tmp

	addr := o.temporalAddr
	b.metrics = o.temporalMetrics
	if addr == "" {
		progress("starting the Temporal dev server (%s)", o.temporalBin)
		ds, err := startDevServer(ctx, o.temporalBin, o.temporalDB, logFile)
		if err != nil {
			return err
		}
		defer ds.stop()
		addr, b.metrics = ds.addr, ds.metricsURL
		b.pids = append(b.pids, ds.cmd.Process.Pid)
		b.res.Server = "Temporal dev server (`temporal server start-dev`, in-memory SQLite)"
		if o.temporalDB != "" {
			b.res.Server = "Temporal dev server (`temporal server start-dev`, SQLite file)"
		}
		if out, err := exec.Command(o.temporalBin, "--version").Output(); err == nil {
			b.res.CLIVersion = strings.TrimSpace(string(out))
		}
	} else {
		b.res.Server = "external Temporal server at " + addr
	}
	progress("creating a PostgreSQL database")
	db, err := benchkit.CreateDatabase(ctx, o.postgresURL, "stepcast_bench_", log)
	if err != nil {
		return err
	}
	if !o.keepDB {
		defer db.Drop()
	}
	b.res.Database = db.Name
	_ = db.Admin.DB.Raw("SHOW server_version").Scan(&b.res.PGVersion).Error

	progress("starting Stepcast: API and inbox dispatcher here, worker in a child process")
	sys, err := startSystem(ctx, systemConfig{DatabaseURL: db.URL, DBMaxOpen: o.dbMaxOpen, DBMaxIdle: o.dbMaxIdle, WorkerPollers: o.workerPollers, Lanes: o.lanes, WorkerCache: o.workerCache, TemporalAddress: addr,
		Namespace: o.namespace, WorkerLog: filepath.Join(tmp, "worker.log")}, log)
	if err != nil {
		return err
	}
	defer sys.close()
	b.sys = sys
	b.pids = append(b.pids, sys.child.cmd.Process.Pid)
	if info, err := sys.bench.WorkflowService().GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{}); err == nil {
		b.res.ServerVersion = info.GetServerVersion()
	}
	time.Sleep(2 * time.Second) // let pollers settle
	if m, err := b.mem(ctx, "idle worker, no enrollment", 0); err == nil {
		b.res.Mem = append(b.res.Mem, m)
	}

	phases := strings.Split(o.phases, ",")
	var errs []error
	step := func(name string, f func(context.Context) error) {
		if !slices.Contains(phases, name) || ctx.Err() != nil {
			return
		}
		if err := f(ctx); err != nil {
			progress("%s: %v", name, err)
			b.res.Notes = append(b.res.Notes, fmt.Sprintf("Phase %s failed: %v", name, err))
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if slices.Contains(phases, "ingest") || slices.Contains(phases, "delivery") {
		progress("warming the server up: 200 empty workflows")
		if _, err := b.emptyStarts(ctx, "warmup", 200); err != nil {
			return err
		}
		progress("a burst of %d empty workflows from %d goroutines", o.emptyBurst, o.emptyConc)
		if b.res.EmptyBurst, err = b.emptyStarts(ctx, "burst", o.emptyBurst); err != nil {
			return err
		}
		progress("  %.1f starts/s", b.res.EmptyBurst.Rate)
	}
	if slices.Contains(phases, "ingest") {
		// The reference starts as many workflows as the ingest enrolls, so
		// that both rates are over the same amount of work.
		n := o.emptyN
		if n == 0 {
			n = int(o.rate * o.duration.Seconds())
		}
		progress("reference: starting %d empty workflows from %d goroutines", n, o.emptyConc)
		if b.res.Empty, err = b.emptyStarts(ctx, "reference", n); err != nil {
			return err
		}
		progress("  %.1f starts/s", b.res.Empty.Rate)
		if o.directN > 0 {
			progress("experiment: starting %d Enrollment workflows directly from %d goroutines", o.directN, o.emptyConc)
			if b.res.Direct, err = b.directStarts(ctx, o.directN); err != nil {
				return err
			}
			progress("  %.1f starts/s", b.res.Direct.Rate)
		}
	}
	step("footprint", b.footprint)
	step("ingest", b.ingest)
	step("delivery", b.delivery)
	if sends, err := scrapeByLabel(ctx, sys.child.url+"/metrics", "stepcast_sends_total", "outcome"); err == nil {
		b.res.SendOutcomes = sends
	}
	b.res.WorkerLog = countLog(filepath.Join(tmp, "worker.log"))
	b.res.APILog = countLog(filepath.Join(tmp, "bench.log"))
	b.res.Finished = time.Now()
	b.res.LoadEnd = loadAvg()

	md := b.res.markdown()
	fmt.Println(md)
	if o.report != "" {
		if err := writeSection(o.report, o.section, md); err != nil {
			errs = append(errs, err)
		} else {
			progress("report written to %s (section %s); logs in %s", o.report, o.section, tmp)
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// commandLine is how to repeat this run.
func commandLine() string {
	args := make([]string, 0, len(os.Args)-1)
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"$") {
			a = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
		}
		args = append(args, a)
	}
	if len(args) == 0 {
		return "`make bench` (that is, `bin/stepcast-bench` with the default flags)"
	}
	a := strings.Join(args, " ")
	return fmt.Sprintf("`bin/stepcast-bench %s` (or `make bench BENCH_ARGS='%s'`)", a, a)
}

type logCount struct{ Lines, SlowSQL int }

// countLog counts the warnings and errors in a log, and among them GORM's
// slow-statement warnings.
func countLog(path string) logCount {
	var c logCount
	b, err := os.ReadFile(path)
	if err != nil {
		return c
	}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "level=WARN") && !strings.Contains(l, "level=ERROR") {
			continue
		}
		c.Lines++
		if strings.Contains(l, `msg="SQL executed"`) || strings.Contains(l, "SLOW SQL") {
			c.SlowSQL++
		}
	}
	return c
}

// mem asks the worker process for its heap after a collection.
func (b *bench) mem(ctx context.Context, label string, sleeping int64) (memSample, error) {
	ms, err := b.sys.child.mem(ctx)
	if err != nil {
		return memSample{}, err
	}
	m := memSample{Label: label, Sleeping: sleeping, Mem: ms}
	if v, err := scrapeMetrics(ctx, b.sys.child.url+"/metrics", "temporal_sticky_cache_size"); err == nil {
		m.Cache = v["temporal_sticky_cache_size"]
	}
	return m, nil
}

// persistence reads the Temporal server's persistence request counters by
// operation (nil when the server's metrics are unknown).
func (b *bench) persistence(ctx context.Context) map[string]float64 {
	if b.metrics == "" {
		return nil
	}
	m, err := scrapeByLabel(ctx, b.metrics, "persistence_requests", "operation")
	if err != nil {
		return nil
	}
	return m
}

// emptyStarts is the enrollment reference: the server's rate of starting
// an empty workflow (run by the worker process on its own task queue).
func (b *bench) emptyStarts(ctx context.Context, tag string, n int) (*emptyResult, error) {
	r := b.startMany(ctx, n, func(i int64) error {
		_, err := b.sys.bench.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: fmt.Sprintf("empty-%s-%s-%d", b.runID, tag, i), TaskQueue: b.sys.emptyQ,
		}, "EmptyWorkflow")
		return err
	})
	// Let the worker finish them before the next phase; a backlog of first
	// tasks drains at tens a second here, so allow for that.
	b.waitDone(ctx, r, func() bool {
		left, err := b.sys.countWorkflows(ctx, fmt.Sprintf("TaskQueue = '%s' AND WorkflowType = 'EmptyWorkflow' AND ExecutionStatus = 'Running'", b.sys.emptyQ))
		return err == nil && left == 0
	})
	return r, ctx.Err()
}

// directStarts is an experiment beside the reference: Enrollment workflows
// started the way the reference starts empty ones (same client, goroutines,
// queue and worker), with the input and search attributes the dispatcher
// gives a follow of the 5-step welcome series. Dividing it by the reference
// gives the workflow's own share of target 2's gap; the rest is the
// webhook, the application database and the dispatcher. They sleep until
// their first step, a day away, for the rest of the run.
func (b *bench) directStarts(ctx context.Context, n int) (*emptyResult, error) {
	doc, err := benchkit.WelcomeDocument()
	if err != nil {
		return nil, err
	}
	base, err := b.sys.enrollmentTasks(ctx)
	if err != nil {
		return nil, err
	}
	r := b.startMany(ctx, n, func(i int64) error {
		user := fmt.Sprintf("U%s%024x", b.runID, i)
		return benchkit.StartEnrollment(ctx, b.sys.bench, client.StartWorkflowOptions{
			ID: fmt.Sprintf("direct-%s-%d", b.runID, i), TaskQueue: b.sys.emptyQ,
		}, 0, "direct", user, uint(i+1), doc)
	})
	// Done is when the worker has run every one's first task: they sleep
	// after it, so there is no end to wait for.
	b.waitDone(ctx, r, func() bool {
		t, err := b.sys.enrollmentTasks(ctx)
		return err == nil && t-base >= float64(n-r.Errors)
	})
	return r, ctx.Err()
}

// startMany calls start for 0..n-1 from the reference's goroutines and
// times it.
func (b *bench) startMany(ctx context.Context, n int, start func(i int64) error) *emptyResult {
	m := b.o.emptyConc
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	var firstErr atomic.Value
	for range m {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := start(i); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(began)
	r := &emptyResult{N: n, Concurrency: m, Elapsed: el, Errors: int(errs.Load()), Rate: float64(int64(n)-errs.Load()) / el.Seconds()}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstError = e
	}
	r.began = began
	return r
}

// waitDone polls done every half second and sets r.Done when it holds,
// within 2 minutes and 50 ms per workflow.
func (b *bench) waitDone(ctx context.Context, r *emptyResult, done func() bool) {
	deadline := time.Now().Add(2*time.Minute + time.Duration(r.N)*50*time.Millisecond)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if done() {
			r.Done = time.Since(r.began)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitUntil polls ok every interval until it holds, ctx ends or timeout.
func waitUntil(ctx context.Context, timeout, interval time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}

// writeSection replaces the report's section between its markers, or adds
// it at the end; the rest of the file (the analysis) stays as it is.
func writeSection(path, name, md string) error {
	begin := "<!-- bench:begin " + name + " -->"
	end := "<!-- bench:end " + name + " -->"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	block := begin + "\n" + md + "\n" + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + block + s[j+len(end):]
	case s == "":
		s = "# Stepcast benchmarks\n\n" + block + "\n"
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// codeVersion names the code measured: the commit, and whether the working
// tree had changes (Stepcast is compiled into this program).
func codeVersion() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	v := strings.TrimSpace(string(out))
	if strings.HasSuffix(v, "-dirty") {
		return "`" + strings.TrimSuffix(v, "-dirty") + "` with uncommitted changes"
	}
	return "`" + v + "`"
}
