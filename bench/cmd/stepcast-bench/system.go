package main

// The system under test: Stepcast's API with its webhook inbox dispatcher
// in this process, built from the same blocks as `stepcast api`, the
// worker in a child process (child.go), and the fake LINE server.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/apiserver"
	"github.com/stepcast/stepcast/bench/internal/benchkit"
	"github.com/stepcast/stepcast/enroll"
	"github.com/stepcast/stepcast/fakeline"
	"github.com/stepcast/stepcast/inbox"
	"github.com/stepcast/stepcast/links"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/worker"
	"github.com/stepcast/stepcast/workflows"
)

const (
	adminToken     = "bench-admin-token"
	linkSecret     = "bench-link-secret-0123456789abcdef0123456789"
	channelSecret  = "bench-channel-secret"
	baselineToken  = "bench-baseline-token"
	stepcastPrefix = "bench-stepcast-token-"
)

type system struct {
	log      *slog.Logger
	store    *models.Store
	temporal client.Client // the API's client, as `stepcast api` has it
	bench    client.Client // the benchmark's own: references, histories
	metrics  *metrics.Metrics
	apiURL   string
	httpSrv  *http.Server
	line     *fakeline.Server
	lineSrv  *httptest.Server
	pushes   *pushCounter
	child    *childProc
	ns       string
	queue    string
	emptyQ   string
	baseQ    string
	cancel   context.CancelFunc
	done     chan struct{}

	mu       sync.Mutex
	taskBase map[uint]float64 // per channel: the worker's Enrollment tasks when it was made
}

type systemConfig struct {
	DatabaseURL     string
	DBMaxOpen       int
	DBMaxIdle       int
	WorkerPollers   int
	Lanes           int
	WorkerCache     int
	TemporalAddress string
	Namespace       string
	WorkerLog       string
}

func startSystem(ctx context.Context, cfg systemConfig, log *slog.Logger) (*system, error) {
	line, err := fakeline.New()
	if err != nil {
		return nil, err
	}
	s := &system{log: log, taskBase: map[uint]float64{}, line: line, done: make(chan struct{}), ns: cfg.Namespace,
		queue: "bench-" + benchkit.RandomHex(4), emptyQ: "bench-empty-" + benchkit.RandomHex(4), baseQ: "bench-baseline-" + benchkit.RandomHex(4)}
	s.pushes = &pushCounter{h: line.Handler(), ok: map[string][]time.Time{}, failed: map[string]int{}}
	s.lineSrv = httptest.NewServer(s.pushes)

	s.metrics = metrics.New()
	if s.store, err = models.Open(cfg.DatabaseURL, "", log); err != nil {
		s.close()
		return nil, err
	}
	limitPool(s.store, cfg.DBMaxOpen, cfg.DBMaxIdle)
	if s.temporal, err = worker.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, s.metrics, log); err != nil {
		s.close()
		return nil, err
	}
	if s.bench, err = worker.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, nil, log); err != nil {
		s.close()
		return nil, err
	}
	if err := worker.RegisterSearchAttributes(ctx, s.bench, cfg.Namespace); err != nil {
		s.close()
		return nil, err
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.close()
		return nil, err
	}
	s.apiURL = "http://" + l.Addr().String()

	// As deps.api() in cmd/stepcast/main.go.
	svc := &enroll.Service{Store: s.store, Temporal: s.temporal, TaskQueue: s.queue, Metrics: s.metrics, Log: log}
	disp := inbox.NewDispatcher(s.store, svc, s.metrics, log)
	if cfg.Lanes > 0 {
		disp.Lanes = cfg.Lanes
	}
	lineClient := &activities.LineClient{Endpoint: s.lineSrv.URL, HTTP: &http.Client{Timeout: 20 * time.Second}}
	api := apiserver.New(apiserver.Config{AdminToken: adminToken, MaxWebhookBytes: 1 << 20}, apiserver.Deps{
		Store: s.store, Temporal: s.temporal, Enroll: svc, Notify: disp.Notify,
		Sender: &activities.TestSender{Store: s.store, LINE: lineClient},
		Links:  &links.Signer{Secret: []byte(linkSecret)}, Metrics: s.metrics, Log: log,
	})
	s.httpSrv = &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	go func() { _ = s.httpSrv.Serve(l) }()
	dctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { defer close(s.done); _ = disp.Run(dctx) }()

	s.child, err = startChild(childConfig{DatabaseURL: cfg.DatabaseURL, DBMaxOpen: cfg.DBMaxOpen, DBMaxIdle: cfg.DBMaxIdle, WorkerPollers: cfg.WorkerPollers, WorkerCache: cfg.WorkerCache,
		TemporalAddress: cfg.TemporalAddress, Namespace: cfg.Namespace, TaskQueue: s.queue,
		EmptyQueue: s.emptyQ, BaselineQueue: s.baseQ, LineURL: s.lineSrv.URL, BaselineToken: baselineToken,
		PublicURL: s.apiURL, LinkSecret: linkSecret, LogFile: cfg.WorkerLog})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *system) close() {
	if s.child != nil {
		s.child.stop()
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.httpSrv != nil {
		_ = s.httpSrv.Close()
	}
	if s.lineSrv != nil {
		s.lineSrv.Close()
	}
	if s.temporal != nil {
		s.temporal.Close()
	}
	if s.bench != nil {
		s.bench.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
}

// admin calls the admin API and decodes a 2xx answer into out.
func (s *system) admin(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.apiURL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// channel creates a channel whose pushes use its own access token, so the
// fake LINE's counts tell the channels apart.
// It notes the worker's count of workflow tasks, from which running counts.
func (s *system) channel(ctx context.Context, name string) (uint, string, error) {
	tasks, err := s.enrollmentTasks(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("worker metrics: %w", err)
	}
	var ch struct{ ID uint }
	token := stepcastPrefix + name
	err = s.admin(ctx, "POST", "/api/v1/channels", map[string]any{"name": "Bench " + name,
		"lineChannelId": benchkit.RandomHex(5), "channelSecret": channelSecret, "accessToken": token}, &ch)
	s.mu.Lock()
	s.taskBase[ch.ID] = tasks
	s.mu.Unlock()
	return ch.ID, token, err
}

// publish creates and publishes a scenario and returns its ID.
func (s *system) publish(ctx context.Context, channel uint, key string, doc map[string]any) (uint, error) {
	var sc struct{ ID uint }
	if err := s.admin(ctx, "POST", fmt.Sprintf("/api/v1/channels/%d/scenarios", channel), map[string]any{"key": key, "document": doc}, &sc); err != nil {
		return 0, err
	}
	return sc.ID, s.admin(ctx, "POST", fmt.Sprintf("/api/v1/scenarios/%d/publish", sc.ID), nil, nil)
}

// enrolled counts a scenario's enrollment rows and the latest start.
func (s *system) enrolled(ctx context.Context, scenarioID uint) (int64, time.Time, error) {
	var row struct {
		N    int64
		Last *time.Time
	}
	err := s.store.DB.WithContext(ctx).Raw("SELECT count(*) AS n, max(started_at) AS last FROM enrollments WHERE scenario_id = ?", scenarioID).Scan(&row).Error
	var last time.Time
	if row.Last != nil {
		last = *row.Last
	}
	return row.N, last, err
}

func (s *system) count(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := s.store.DB.WithContext(ctx).Raw(sql, args...).Scan(&n).Error
	return n, err
}

// backlog is the inbox's pending events, read from the database, and the
// stepcast_webhook_inbox_backlog gauge that the API reports.
func (s *system) backlog(ctx context.Context) (db int64, gauge float64, err error) {
	if db, err = s.count(ctx, "SELECT count(*) FROM webhook_events WHERE processed_at IS NULL"); err != nil {
		return
	}
	m, err := scrapeMetrics(ctx, s.apiURL+"/metrics", "stepcast_webhook_inbox_backlog")
	return db, m["stepcast_webhook_inbox_backlog"], err
}

// countWorkflows asks Temporal's visibility.
func (s *system) countWorkflows(ctx context.Context, query string) (int64, error) {
	res, err := s.bench.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return 0, err
	}
	return res.Count, nil
}

// pushCounter sees every request to the fake LINE and notes when each push
// was accepted, by access token: cheaper to poll than the fake's copies.
type pushCounter struct {
	h      http.Handler
	mu     sync.Mutex
	ok     map[string][]time.Time
	failed map[string]int
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (p *pushCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2/bot/message/push" {
		p.h.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	p.h.ServeHTTP(sw, r)
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	defer p.mu.Unlock()
	if sw.status == http.StatusOK {
		p.ok[token] = append(p.ok[token], time.Now())
	} else {
		p.failed[token]++
	}
}

// accepted returns the accepted pushes' times for a token, and the count of
// refused ones.
func (p *pushCounter) accepted(token string) ([]time.Time, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.ok[token]...), p.failed[token]
}

func (p *pushCounter) n(token string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ok[token])
}

// dbStat is this run's database's activity counters from pg_stat_database.
// PostgreSQL publishes a backend's counts when it has been idle a while (up
// to 10 s), so snapshots are taken after a quiet moment.
type dbStat struct {
	Commits, Inserted, Updated, Sessions int64
}

func (s *system) dbStats(ctx context.Context) dbStat {
	var d dbStat
	_ = s.store.DB.WithContext(ctx).Raw(`SELECT xact_commit AS commits, tup_inserted AS inserted, tup_updated AS updated, sessions
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&d).Error
	return d
}

func (d dbStat) minus(o dbStat) dbStat {
	return dbStat{Commits: d.Commits - o.Commits, Inserted: d.Inserted - o.Inserted, Updated: d.Updated - o.Updated, Sessions: d.Sessions - o.Sessions}
}

// statsQuiet is how long to wait for PostgreSQL to publish the counters.
const statsQuiet = 11 * time.Second

// taskBacklog is the approximate backlog of a workflow task queue: tasks
// that the server has but no worker has taken yet (a started workflow
// whose first task has not run).
func (s *system) taskBacklog(ctx context.Context, queue string) (int64, time.Duration, error) {
	res, err := s.bench.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace: s.ns, TaskQueue: &taskqueuepb.TaskQueue{Name: queue, Kind: enums.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enums.TASK_QUEUE_TYPE_WORKFLOW, ReportStats: true,
	})
	if err != nil {
		return 0, 0, err
	}
	st := res.GetStats()
	return st.GetApproximateBacklogCount(), st.GetApproximateBacklogAge().AsDuration(), nil
}

// running counts a channel's workflows that have run their first task. An
// enrollment starts with StepcastNode already set, so visibility cannot
// tell; the worker's SDK metrics can: each new enrollment of this
// benchmark's scenarios runs one workflow task and sleeps until its first
// step, and the phases run one after the other, so the growth of the
// worker's count of Enrollment workflow tasks since the channel was made is
// how many of its enrollments have run their first task.
func (s *system) running(ctx context.Context, channel uint) (int64, error) {
	n, err := s.enrollmentTasks(ctx)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	base := s.taskBase[channel]
	s.mu.Unlock()
	return int64(n - base), nil
}

// enrollmentTasks is how many Enrollment workflow tasks the worker has run.
func (s *system) enrollmentTasks(ctx context.Context) (float64, error) {
	m, err := scrapeByLabel(ctx, s.child.url+"/metrics", "temporal_workflow_task_execution_latency_seconds_count", "workflow_type")
	if err != nil {
		return 0, err
	}
	return m[workflows.EnrollmentWorkflow], nil
}
