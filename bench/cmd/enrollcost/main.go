// Command enrollcost splits what one enrollment costs into its parts and
// measures each alone, for the enrollment figure of BENCHMARKS.md (target
// 2): where does a follow's time go, against the server's empty start?
//
//  1. Workflow starts, 3000 from 16 goroutines (as the inbox dispatcher's
//     lanes): an empty workflow, and an Enrollment with its real input (the
//     5-step welcome document) and search attributes; each with no worker,
//     with a worker of the SDK's default options polling (as the
//     benchmark's reference runs), and with Stepcast's worker polling.
//  2. First workflow tasks: 2000 enrollments started with no worker, then
//     Stepcast's worker drains that backlog.
//  3. The application database per follow, without Temporal: the webhook's
//     insert, the friend, the enrollment row, and the marks in batches of
//     100 ms, from 16 goroutines.
//
// Each line gives the rate and the CPU per item of the Temporal server, of
// PostgreSQL (both read from /proc by process name, so both must run on
// this machine) and of this process (client, worker or ORM). Use a server
// that nothing else uses: the starts stay behind on task queues of their
// own, which nobody polls.
//
//	go run ./bench/cmd/enrollcost -temporal-address 127.0.0.1:7243
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/bench/internal/benchkit"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/worker"
	"github.com/stepcast/stepcast/workflows"
)

func main() {
	address := flag.String("temporal-address", "127.0.0.1:7243", "Temporal frontend")
	pgURL := flag.String("postgres-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL, where a scratch database is made for part 3")
	starts := flag.Int("starts", 3000, "workflow starts per line of part 1")
	drainN := flag.Int("drain", 2000, "enrollments whose first tasks part 2 drains")
	follows := flag.Int("follows", 5000, "follows of part 3")
	flag.Parse()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.Dial(client.Options{HostPort: *address, Logger: sdklog.NewStructuredLogger(log), MetricsHandler: taskCounter{}})
	if err != nil {
		fatal(err)
	}
	if err := worker.RegisterSearchAttributes(ctx, c, "default"); err != nil {
		fatal(err)
	}
	doc, err := benchkit.WelcomeDocument()
	if err != nil {
		fatal(err)
	}
	run := "enrollcost-" + benchkit.RandomHex(4)

	fmt.Println("| measurement | items | per second | CPU ms per item: Temporal server | PostgreSQL | this process | total |")
	fmt.Println("|---|---|---|---|---|---|---|")
	stepcastWorker := worker.Options()
	for _, w := range []struct {
		name string
		opts *sdkworker.Options
	}{{"no worker", nil}, {"a worker with the SDK's default options polling", &sdkworker.Options{}}, {"Stepcast's worker polling", &stepcastWorker}} {
		for _, kind := range []string{"empty", "Enrollment"} {
			queue := fmt.Sprintf("%s-%s-%d", run, kind, time.Now().UnixNano())
			stop := startWorker(c, queue, w.opts)
			m := measure(func() int { return startMany(ctx, c, queue, kind, doc, *starts, false) })
			stop()
			m.print(fmt.Sprintf("start an %s workflow, %s", kind, w.name))
		}
	}

	// A start and its first workflow task, together: the whole cost of an
	// enrollment that runs, plain and eager.
	for _, kind := range []string{"empty", "Enrollment"} {
		for _, eager := range []bool{false, true} {
			queue := fmt.Sprintf("%s-run-%s-%d", run, kind, time.Now().UnixNano())
			stop := startWorker(c, queue, &stepcastWorker)
			m := measure(func() int {
				from := tasksRun.Load()
				n := startMany(ctx, c, queue, kind, doc, *starts, eager)
				waitTasks(from, n)
				return n
			})
			stop()
			how := "plain"
			if eager {
				how = "eager"
			}
			m.print(fmt.Sprintf("start an %s workflow (%s) and run its first task, Stepcast's worker", kind, how))
		}
	}

	queue := fmt.Sprintf("%s-drain", run)
	startMany(ctx, c, queue, "Enrollment", doc, *drainN, false)
	m := measure(func() int {
		from := tasksRun.Load()
		stop := startWorker(c, queue, &stepcastWorker)
		defer stop()
		waitTasks(from, *drainN)
		return *drainN
	})
	m.print("first workflow task of a new Enrollment, Stepcast's worker draining a backlog")

	if err := appDB(ctx, *pgURL, *follows, log); err != nil {
		fatal(err)
	}
}

// startWorker runs Stepcast's workflows and an empty one on queue; opts nil
// runs none.
func startWorker(c client.Client, queue string, opts *sdkworker.Options) func() {
	if opts == nil {
		return func() {}
	}
	w := worker.New(c, queue, &activities.Activities{}, *opts)
	w.RegisterWorkflowWithOptions(func(workflow.Context) error { return nil }, workflow.RegisterOptions{Name: "EmptyWorkflow"})
	if err := w.Start(); err != nil {
		fatal(err)
	}
	return w.Stop
}

// startMany starts n workflows of a kind on queue from 16 goroutines, as
// enroll starts an enrollment (eager: asking for eager starts), and
// returns how many the server accepted.
func startMany(ctx context.Context, c client.Client, queue, kind string, doc *scenario.Document, n int, eager bool) int {
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				user := fmt.Sprintf("U%s%024d", benchkit.RandomHex(4), i)
				opts := client.StartWorkflowOptions{ID: queue + "/" + user, TaskQueue: queue, EnableEagerStart: eager}
				var err error
				if kind == "empty" {
					_, err = c.ExecuteWorkflow(ctx, opts, "EmptyWorkflow")
				} else {
					err = benchkit.StartEnrollment(ctx, c, opts, 1, "welcome", user, uint(i+1), doc)
				}
				if err == nil {
					ok.Add(1)
				} else if ok.Load() == 0 {
					fmt.Fprintln(os.Stderr, "start:", err)
				}
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

// appDB measures the application database's part of a follow, in a
// scratch database that it drops at the end.
func appDB(ctx context.Context, adminURL string, n int, log *slog.Logger) error {
	db, err := benchkit.CreateDatabase(ctx, adminURL, "enrollcost_", log)
	if err != nil {
		return err
	}
	defer db.Drop()
	st, err := models.Open(db.URL, "", log)
	if err != nil {
		return err
	}
	defer st.Close()
	ch := &models.Channel{Name: "enrollcost", LineChannelID: benchkit.RandomHex(5), Secret: "secret", AccessToken: "token", TimeZone: "Asia/Tokyo"}
	if err := st.CreateChannel(ctx, ch); err != nil {
		return err
	}
	var failed atomic.Value
	m := measure(func() int {
		var mu sync.Mutex
		var applied []uint
		flush := func() {
			mu.Lock()
			ids := applied
			applied = nil
			mu.Unlock()
			if len(ids) > 0 {
				if err := st.MarkWebhookEventsProcessed(ctx, ids, time.Now()); err != nil {
					failed.CompareAndSwap(nil, err)
				}
			}
		}
		done := make(chan struct{})
		var marker sync.WaitGroup
		marker.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					flush()
					return
				case <-tick.C:
					flush()
				}
			}
		})
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
					user := fmt.Sprintf("U%s%024d", benchkit.RandomHex(4), i)
					now := time.Now()
					payload := fmt.Sprintf(`{"type":"follow","mode":"active","timestamp":%d,"source":{"type":"user","userId":%q},"webhookEventId":"%s","deliveryContext":{"isRedelivery":false},"replyToken":"%s","follow":{"isUnblocked":false}}`,
						now.UnixMilli(), user, benchkit.RandomHex(13), benchkit.RandomHex(16))
					evs := []models.WebhookEvent{{ChannelID: ch.ID, WebhookEventID: benchkit.RandomHex(13), Type: "follow", UserID: user, Timestamp: now, Payload: payload, ReceivedAt: now}}
					if _, err := st.InsertWebhookEvents(ctx, evs); err != nil {
						failed.CompareAndSwap(nil, err)
						return
					}
					c, err := st.ApplyStatus(ctx, ch.ID, user, now, models.FriendFollowing)
					if err != nil {
						failed.CompareAndSwap(nil, err)
						return
					}
					err = st.RecordEnrollment(ctx, &models.Enrollment{ChannelID: ch.ID, ScenarioID: 1, ScenarioVersion: 1, FriendID: c.Friend.ID,
						WorkflowID: workflows.EnrollmentWorkflowID(ch.ID, "welcome", user), RunID: benchkit.RandomHex(16), StartedAt: now})
					if err != nil {
						failed.CompareAndSwap(nil, err)
						return
					}
					mu.Lock()
					applied = append(applied, evs[0].ID)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(done)
		marker.Wait()
		return n
	})
	if err, ok := failed.Load().(error); ok {
		return err
	}
	m.print("application database per follow: webhook insert, friend, enrollment row, batched mark (no Temporal)")
	return nil
}

// measurement is the rate and CPU of one part.
type measurement struct {
	n                        int
	elapsed                  time.Duration
	server, postgres, client float64 // CPU seconds
}

func measure(f func() int) measurement {
	s0, p0, c0 := benchkit.CPUByName("temporal-server"), benchkit.CPUByName("postgres"), ownCPU()
	start := time.Now()
	n := f()
	m := measurement{n: n, elapsed: time.Since(start)}
	m.server, m.postgres, m.client = benchkit.CPUByName("temporal-server")-s0, benchkit.CPUByName("postgres")-p0, ownCPU()-c0
	return m
}

func (m measurement) print(what string) {
	per := func(s float64) float64 { return s * 1000 / float64(max(m.n, 1)) }
	fmt.Printf("| %s | %d | %.1f | %.2f | %.2f | %.2f | %.2f |\n", what, m.n, float64(m.n)/m.elapsed.Seconds(),
		per(m.server), per(m.postgres), per(m.client), per(m.server+m.postgres+m.client))
}

// ownCPU is the CPU seconds this process has used.
func ownCPU() float64 {
	secs, _, _ := benchkit.ProcessCPU(os.Getpid())
	return secs
}

// tasksRun counts the workflow tasks this process's workers have run.
var tasksRun atomic.Int64

// waitTasks waits until n workflow tasks have run since tasksRun was from.
func waitTasks(from int64, n int) {
	for tasksRun.Load()-from < int64(n) {
		time.Sleep(20 * time.Millisecond)
	}
}

// taskCounter is a metrics handler that counts workflow tasks (the SDK
// times each) and drops the rest.
type taskCounter struct{ client.MetricsHandler }

func (taskCounter) WithTags(map[string]string) client.MetricsHandler { return taskCounter{} }
func (taskCounter) Counter(string) client.MetricsCounter             { return client.MetricsNopHandler.Counter("") }
func (taskCounter) Gauge(string) client.MetricsGauge                 { return client.MetricsNopHandler.Gauge("") }
func (taskCounter) Timer(name string) client.MetricsTimer {
	if name == "temporal_workflow_task_execution_latency" {
		return taskTimer{}
	}
	return client.MetricsNopHandler.Timer("")
}

type taskTimer struct{}

func (taskTimer) Record(time.Duration) { tasksRun.Add(1) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "enrollcost:", err)
	os.Exit(1)
}
