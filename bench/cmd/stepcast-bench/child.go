package main

// The worker runs in a child process (this program started again with the
// worker-child argument), as `stepcast worker` does in production, so that
// its memory is its own: /memstats collects garbage and reports the Go
// heap. The child also runs the reference workers (the empty and the
// baseline workflows) on their own task queues.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/enroll"
	"github.com/stepcast/stepcast/links"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/worker"
	"github.com/stepcast/stepcast/workflows"
)

// childConfig is what the parent hands the child, as JSON in an
// environment variable.
type childConfig struct {
	DatabaseURL string
	DBMaxOpen   int
	DBMaxIdle   int
	// WorkerPollers, when set, replaces worker.Options' number of
	// workflow and activity task pollers of Stepcast's worker.
	WorkerPollers int
	// WorkerCache, when set, replaces the SDK's sticky cache size (10,000
	// workflows) in the worker process.
	WorkerCache     int
	TemporalAddress string
	Namespace       string
	TaskQueue       string
	EmptyQueue      string
	BaselineQueue   string
	LineURL         string
	BaselineToken   string
	PublicURL       string
	LinkSecret      string
	LogFile         string
}

const childEnv = "STEPCAST_BENCH_CHILD"

// memStats is the child's memory after a forced collection.
type memStats struct {
	HeapAlloc   uint64 // live heap after GC
	HeapInuse   uint64
	HeapObjects uint64
	Sys         uint64
	RSS         uint64
	Goroutines  int
}

// runChild is the worker process. It serves /memstats and /metrics on a
// loopback port that it prints as "ready ADDR", and exits when its stdin
// closes (the parent ended).
func runChild() error {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cfg); err != nil {
		return fmt.Errorf("worker-child: bad %s: %w", childEnv, err)
	}
	logw := io.Discard
	if cfg.LogFile != "" {
		f, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		logw = f
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})).With("proc", "worker")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The same building blocks as `stepcast worker` (cmd/stepcast/main.go).
	m := metrics.New()
	store, err := models.Open(cfg.DatabaseURL, "", log)
	if err != nil {
		return err
	}
	defer store.Close()
	limitPool(store, cfg.DBMaxOpen, cfg.DBMaxIdle)
	tc, err := worker.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, m, log)
	if err != nil {
		return err
	}
	defer tc.Close()
	svc := &enroll.Service{Store: store, Temporal: tc, TaskQueue: cfg.TaskQueue, Metrics: m, Log: log}
	acts := &activities.Activities{Store: store, Metrics: m,
		LINE:     &activities.LineClient{Endpoint: cfg.LineURL, HTTP: &http.Client{Timeout: 20 * time.Second}},
		Links:    &links.Rewriter{Signer: &links.Signer{Secret: []byte(cfg.LinkSecret)}, BaseURL: cfg.PublicURL},
		Enroller: svc}
	if cfg.WorkerCache > 0 {
		sdkworker.SetStickyWorkflowCacheSize(cfg.WorkerCache)
	}
	wopts := worker.Options()
	if cfg.WorkerPollers > 0 {
		wopts.MaxConcurrentWorkflowTaskPollers = cfg.WorkerPollers
		wopts.MaxConcurrentActivityTaskPollers = cfg.WorkerPollers
	}
	w := worker.New(tc, cfg.TaskQueue, acts, wopts)

	// The references run with the SDK's default options, as the samples do.
	ew := sdkworker.New(tc, cfg.EmptyQueue, sdkworker.Options{})
	ew.RegisterWorkflowWithOptions(EmptyWorkflow, workflow.RegisterOptions{Name: "EmptyWorkflow"})
	ew.RegisterWorkflowWithOptions(workflows.Enrollment, workflow.RegisterOptions{Name: workflows.EnrollmentWorkflow}) // -direct-enrollments
	bw := sdkworker.New(tc, cfg.BaselineQueue, sdkworker.Options{})
	bw.RegisterWorkflowWithOptions(BaselineWorkflow, workflow.RegisterOptions{Name: "BaselineWorkflow"})
	bw.RegisterActivityWithOptions((&baselinePusher{Endpoint: cfg.LineURL, Token: cfg.BaselineToken,
		HTTP: &http.Client{Timeout: 20 * time.Second}}).Push, activity.RegisterOptions{Name: "Push"})
	for _, x := range []sdkworker.Worker{w, ew, bw} {
		if err := x.Start(); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
		defer x.Stop()
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/memstats", func(rw http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(rw).Encode(readMem())
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	fmt.Printf("ready %s\n", l.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent goes away
	return nil
}

func readMem() memStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memStats{HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, HeapObjects: ms.HeapObjects,
		Sys: ms.Sys, RSS: rss(), Goroutines: runtime.NumGoroutine()}
}

// rss reads the resident set size from /proc (0 elsewhere).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// limitPool caps the store's open connections (0 leaves the driver's
// default, unlimited): the benchmark shares its PostgreSQL server. idle,
// when set, replaces the driver's default of 2 idle connections kept.
func limitPool(store *models.Store, open, idle int) {
	db, err := store.DB.DB()
	if err != nil {
		return
	}
	if open > 0 {
		db.SetMaxOpenConns(open)
	}
	if idle > 0 {
		db.SetMaxIdleConns(idle)
	}
}

// childProc is the parent's handle on the worker process.
type childProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

func startChild(cfg childConfig) (*childProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(self, "worker-child")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childProc{cmd: cmd, stdin: stdin}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "ready ")
		if !ok {
			c.stop()
			return nil, fmt.Errorf("worker process said %q", line)
		}
		c.url = "http://" + addr
		return c, nil
	case <-time.After(60 * time.Second):
		c.stop()
		return nil, fmt.Errorf("the worker process did not start within 60s")
	}
}

func (c *childProc) mem(ctx context.Context) (memStats, error) {
	var ms memStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/memstats", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ms, err
	}
	defer res.Body.Close()
	err = json.NewDecoder(res.Body).Decode(&ms)
	return ms, err
}

func (c *childProc) stop() {
	if c == nil {
		return
	}
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
