package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/stepcast/stepcast/worker"
)

type results struct {
	Opts            options
	Cmdline         string
	Code            string
	Started         time.Time
	Finished        time.Time
	Machine         machineFacts
	LoadStart       string
	LoadEnd         string
	Server          string
	ServerVersion   string
	CLIVersion      string
	PGVersion       string
	Database        string
	LogDir          string
	Empty           *emptyResult // the enrollment reference, as many as the ingest's follows
	EmptyBurst      *emptyResult
	Direct          *emptyResult // the -direct-enrollments experiment
	Healthz         *loadResult
	HealthzCPU      cpuUse
	Ingest          *ingestResult
	Mem             []memSample
	DBAfterIngest   []tableSize
	DBFriends       int64
	DBAfterDelivery []tableSize
	Footprint       *footprintResult
	Delivery        *deliveryResult
	SendOutcomes    map[string]float64
	WorkerLog       logCount
	APILog          logCount
	Notes           []string
}

// startRate is the server's best-known rate of starting empty workflows,
// for planning how far ahead to set a due time.
func (r *results) startRate() float64 {
	for _, e := range []*emptyResult{r.Empty, r.EmptyBurst} {
		if e != nil && e.Rate > 0 {
			return e.Rate
		}
	}
	return 0
}

type emptyResult struct {
	N, Concurrency, Errors int
	Elapsed                time.Duration
	Rate                   float64
	// Done is when every one of them had run to its end, from the first
	// start (zero: not within the wait).
	Done       time.Duration
	FirstError string
	began      time.Time
}

type backlogSample struct {
	At       time.Duration
	Backlog  int64
	Gauge    float64
	Enrolled int64
	Running  int64
	Tasks    int64
	TaskAge  time.Duration
}

type ingestVerify struct {
	Stored, Pending, Retried, Friends               int64
	Enrollments, DistinctFriends, DistinctWorkflows int64
	Workflows, Running                              int64
	AnsweredOKEnrolled                              int64
}

type ingestResult struct {
	Follows           int
	Load              *loadResult
	LoadCPU, DrainCPU cpuUse
	LoadAvg           string
	Timeline          []backlogSample
	EnrolledAtLoadEnd int64
	Enrolled          int64
	FirstFollow       time.Time
	LastEnrolled      time.Time
	EnrollRate        float64
	DrainRate         float64
	Drained           bool
	AllRunning        time.Time
	MaxTaskAge        time.Duration
	Verify            ingestVerify
	DB                dbStat
}

// RunningRate is friends enrolled *and running* (first workflow task run)
// per second from the first follow; 0 when not every workflow ran.
func (ir *ingestResult) RunningRate() float64 {
	if ir.AllRunning.IsZero() {
		return 0
	}
	return float64(ir.Enrolled) / ir.AllRunning.Sub(ir.FirstFollow).Seconds()
}

type memSample struct {
	Label    string
	Sleeping int64
	Mem      memStats
	Cache    float64
}

type footprintResult struct {
	Friends  int
	Pushes   int
	Stepcast *historyStats
	Baseline *historyStats
}

type sendResult struct {
	Pushes, Refused int
	Rate            float64
	Span            time.Duration
	First, P50, P99 time.Duration
	CPU             cpuUse
	Persistence     map[string]float64
	History         *historyStats
	DistinctKeys    int
	Recipients      int
	WrongCount      int
	DB              dbStat
}

type deliveryResult struct {
	Friends, Steps int
	Due            time.Time
	Setup, Margin  time.Duration
	Running        time.Duration
	DeliveryRows   int64
	Resent         int
	Stepcast       sendResult
	BaselineDue    time.Time
	BaselineSetup  time.Duration
	BaselineMargin time.Duration
	Baseline       sendResult
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// verdict says whether a target is met and, if not, by how much.
func verdict(ok bool, missed string) string {
	if ok {
		return "**met**"
	}
	return "**missed**: " + missed
}

func (r *results) markdown() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	m := r.Machine
	p("## Run `%s`, on the %s", r.Opts.section, r.Server)
	p("")
	p("- Command: %s", r.Cmdline)
	p("- When: %s to %s UTC (%s)", r.Started.UTC().Format("2006-01-02 15:04"), r.Finished.UTC().Format("15:04"), r.Finished.Sub(r.Started).Round(time.Second))
	p("- Machine: %d CPUs (%s), %s memory, %s; %s", m.CPUs, m.CPUModel, m.MemTotal, m.OS, m.Go)
	ver := r.ServerVersion
	if r.CLIVersion != "" {
		ver = r.CLIVersion + "; server reports " + r.ServerVersion
	}
	wo := worker.Options()
	p("- Temporal: %s (%s); Go SDK v1.50; Stepcast's worker with `worker.Options()` (%d workflow-task pollers, %s sticky schedule-to-start), the references with the SDK's defaults",
		r.Server, ver, wo.MaxConcurrentWorkflowTaskPollers, wo.StickyScheduleToStartTimeout)
	p("- Code: %s (the working tree, compiled into the benchmark)", r.Code)
	p("- PostgreSQL %s on 127.0.0.1 (application database `%s`, created and dropped by the run)", r.PGVersion, r.Database)
	if r.Opts.dbMaxOpen > 0 || r.Opts.dbMaxIdle > 0 || r.Opts.workerPollers > 0 || r.Opts.lanes > 0 || r.Opts.workerCache > 0 {
		p("- **Experiment, not the production configuration**: %s", strings.Join(experiments(r.Opts), "; "))
	}
	p("- Layout: the load generator, Stepcast's API and inbox dispatcher (`apiserver`, `inbox`, `enroll` as `stepcast api` builds them) and the fake LINE in one process; Stepcast's worker (as `stepcast worker` builds it) and the reference workers in a child process; the Temporal server and PostgreSQL in their own. All on this one machine.")
	p("- Load average (1, 5, 15 min): %s at the start, %s at the end. The machine is shared with other engineers' test runs. The CPU columns below give the CPUs busy (of %d) during a phase, split into this run's processes (benchmark and API, worker, Temporal server) and everything else, which includes the PostgreSQL server that this run shares with the others.", r.LoadStart, r.LoadEnd, m.CPUs)
	p("")

	// Summary.
	p("### Summary")
	p("")
	p("| # | figure | Stepcast | reference (same run) | ratio | target | verdict |")
	p("|---|---|---|---|---|---|---|")
	if ir := r.Ingest; ir != nil && ir.Load != nil && r.Healthz != nil {
		l := ir.Load
		ok := l.pct(0.99) < 50*time.Millisecond && l.Errors == 0 && l.accepted() >= 0.98*r.Opts.rate
		miss := fmt.Sprintf("p99 %s (%.1f× the 50 ms target), %.0f/s accepted, %d errors", ms(l.pct(0.99)), float64(l.pct(0.99))/float64(50*time.Millisecond), l.accepted(), l.Errors)
		p("| 1 | webhook ingest, %.0f follows/s for %s: accepted/s, p50, p99 | %.1f/s, %s, %s | GET /healthz: %.1f/s, %s, %s | %s accepted; p99 %s× | p99 < 50 ms at 500/s for a minute, nothing lost | %s |",
			r.Opts.rate, r.Opts.duration, l.accepted(), ms(l.pct(0.5)), ms(l.pct(0.99)),
			r.Healthz.accepted(), ms(r.Healthz.pct(0.5)), ms(r.Healthz.pct(0.99)),
			ratio(l.accepted(), r.Healthz.accepted()), ratio(float64(l.pct(0.99)), float64(r.Healthz.pct(0.99))), verdict(ok, miss))
	}
	if ir := r.Ingest; ir != nil && r.Empty != nil {
		q := ir.EnrollRate / r.Empty.Rate
		p("| 2 | enrollment: friends enrolled/s from follow events | %.1f/s (%d friends) | %d empty workflow starts: %.1f/s | %.2f | ≥ 0.90 | %s |",
			ir.EnrollRate, ir.Enrolled, r.Empty.N, r.Empty.Rate, q, verdict(q >= 0.9, fmt.Sprintf("%.2f of the reference, %.0f%% short", q, (0.9-q)/0.9*100)))
	}
	if d := r.Delivery; d != nil && d.Baseline.Rate > 0 {
		q := d.Stepcast.Rate / d.Baseline.Rate
		p("| 3 | step delivery: sends/s, %d friends × %d step(s) due at once | %.1f/s | samples-style workflow: %.1f/s | %.2f | ≥ 2.0 | %s |",
			d.Friends, d.Steps, d.Stepcast.Rate, d.Baseline.Rate, q, verdict(q >= 2, fmt.Sprintf("%.2f× the baseline, not 2×", q)))
	} else if d != nil {
		p("| 3 | step delivery | %.1f/s | baseline not measured | | ≥ 2.0 | not judged |", d.Stepcast.Rate)
	}
	if f := r.Footprint; f != nil && f.Stepcast != nil {
		p("| 4a | history events per 5-step enrollment | %d | samples-style 5 steps: %d | %s | ≤ 25 | %s |",
			f.Stepcast.Events, f.Baseline.Events, ratio(float64(f.Stepcast.Events), float64(f.Baseline.Events)),
			verdict(f.Stepcast.Events <= 25, fmt.Sprintf("%d events, %d over", f.Stepcast.Events, f.Stepcast.Events-25)))
	}
	if a, z, ok := r.memFlat(); ok {
		growth := float64(z.Mem.HeapAlloc) - float64(a.Mem.HeapAlloc)
		flat := growth/float64(a.Mem.HeapAlloc) < 0.10
		p("| 4b | worker Go heap after GC, %d → %d sleeping enrollments | %s → %s (%.0f → %.0f workflows cached) | idle worker: %s | %s | flat | %s |",
			a.Sleeping, z.Sleeping, mib(a.Mem.HeapAlloc), mib(z.Mem.HeapAlloc), a.Cache, z.Cache, mib(r.Mem[0].Mem.HeapAlloc),
			ratio(float64(z.Mem.HeapAlloc), float64(a.Mem.HeapAlloc)),
			verdict(flat, fmt.Sprintf("grew %s (%.0f%%)", mib(uint64(max(growth, 0))), growth/float64(a.Mem.HeapAlloc)*100)))
	}
	if len(r.DBAfterIngest) > 0 && r.DBFriends > 0 {
		var rows, bytes int64
		for _, t := range r.DBAfterIngest {
			rows += t.Rows
			bytes += t.Bytes
		}
		p("| 4c | database per sleeping friend (5-step scenario) | %.2f rows, %.0f bytes | | | (measure) | |", float64(rows)/float64(r.DBFriends), float64(bytes)/float64(r.DBFriends))
	}
	if r.Opts.temporalAddr != "" {
		p("| 5 | the same on another Temporal server | this report: %s | | | | measured |", r.Server)
	} else {
		p("| 5 | the same on a full Temporal server on PostgreSQL | | | | | another run: `make temporal-postgres`, then `-temporal-address` |")
	}
	p("")

	r.ingestSection(p)
	r.enrollSection(p)
	r.deliverySection(p)
	r.footprintSection(p)

	if len(r.Notes) > 0 {
		p("### Notes from the run")
		p("")
		for _, n := range r.Notes {
			p("- %s", n)
		}
		p("")
	}
	var outs []string
	for k, v := range r.SendOutcomes {
		outs = append(outs, fmt.Sprintf("%s %.0f", k, v))
	}
	sort.Strings(outs)
	p("Worker send outcomes (`stepcast_sends_total`): %s. Warnings and errors logged: worker %d (of which slow SQL over 500 ms: %d), API and dispatcher %d (slow SQL: %d).",
		strings.Join(outs, ", "), r.WorkerLog.Lines, r.WorkerLog.SlowSQL, r.APILog.Lines, r.APILog.SlowSQL)
	return w.String()
}

// memFlat picks the quiescent samples to compare: the first one with
// enrollments asleep, and the last.
func (r *results) memFlat() (memSample, memSample, bool) {
	var q []memSample
	for _, m := range r.Mem {
		if strings.HasPrefix(m.Label, "all asleep") {
			q = append(q, m)
		}
	}
	var busy10k *memSample
	for i := range r.Mem {
		if r.Mem[i].Sleeping >= 10000 && r.Mem[i].Sleeping < 15000 {
			busy10k = &r.Mem[i]
			break
		}
	}
	switch {
	case busy10k != nil && len(q) > 0 && busy10k.Sleeping < q[len(q)-1].Sleeping:
		return *busy10k, q[len(q)-1], true
	case len(q) >= 2:
		return q[0], q[len(q)-1], true
	}
	return memSample{}, memSample{}, false
}

func (r *results) ingestSection(p func(string, ...any)) {
	ir := r.Ingest
	if ir == nil || ir.Load == nil {
		return
	}
	l, h := ir.Load, r.Healthz
	p("### 1. Webhook ingest")
	p("")
	p("Open loop: request *i* is due at start + *i*/rate and goes out then whether or not earlier ones were answered; latency counts from when it was due, so a stall of the server (or of the generator) shows in the percentiles. Each request is one signed `follow` event from a new user (HMAC-SHA256 `X-Line-Signature`, bodies signed before the run). The reference is the same rate against `GET /healthz`, a plain handler on the same server, measured just before.")
	p("")
	p("| load | requests | accepted/s | p50 | p90 | p99 | max | errors | CPUs busy (this run / others) |")
	p("|---|---|---|---|---|---|---|---|---|")
	row := func(name string, x *loadResult, c cpuUse) {
		var mx time.Duration
		if len(x.Lat) > 0 {
			mx = x.Lat[len(x.Lat)-1]
		}
		p("| %s | %d | %.1f | %s | %s | %s | %s | %d | %.2f (%.2f / %.2f) |", name, x.Planned, x.accepted(), ms(x.pct(0.5)), ms(x.pct(0.9)), ms(x.pct(0.99)), ms(mx), x.Errors, c.Total, c.Ours, c.Others)
	}
	if h != nil {
		row(fmt.Sprintf("GET /healthz, %.0f/s", h.Rate), h, r.HealthzCPU)
	}
	row(fmt.Sprintf("POST follow webhook, %.0f/s", l.Rate), l, ir.LoadCPU)
	p("")
	if l.Errors > 0 {
		var ks []string
		for k, v := range l.ErrorKind {
			ks = append(ks, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(ks)
		p("Errors: %s.", strings.Join(ks, ", "))
		p("")
	}
	p("The generator was at most %s late sending a request; the load average was %s when the load ended. While the load ran, %d of the %d follows were enrolled already; the rest waited in the inbox.", ms(l.MaxLag), ir.LoadAvg, ir.EnrolledAtLoadEnd, l.OK)
	p("")
	p("Backlog over time: pending rows in `webhook_events`, and the `stepcast_webhook_inbox_backlog` gauge that the API reports at `/metrics` (the dispatcher updates it at each batch of up to 500); enrollment rows; workflows *running*, that is whose first workflow task has run (the growth of the worker's count of `Enrollment` workflow tasks, `temporal_workflow_task_execution_latency_seconds_count`: each new enrollment runs one task and sleeps); and the Temporal task queue's approximate backlog of workflow tasks and the age of the oldest (server statistics, refreshed every few seconds):")
	p("")
	p("| t | inbox pending | gauge | enrolled | running | task queue backlog (oldest) |")
	p("|---|---|---|---|---|---|")
	step := max(len(ir.Timeline)/24, 1)
	for i, s := range ir.Timeline {
		if i%step != 0 && i != len(ir.Timeline)-1 {
			continue
		}
		p("| %s | %d | %.0f | %d | %d | %d (%s) |", s.At.Round(time.Second), s.Backlog, s.Gauge, s.Enrolled, s.Running, s.Tasks, s.TaskAge.Round(time.Second))
	}
	p("")
	v := ir.Verify
	ok := v.AnsweredOKEnrolled == int64(l.OK) && v.Pending == 0 && v.Enrollments == v.Stored && v.Friends == v.Stored &&
		v.DistinctFriends == v.Enrollments && v.DistinctWorkflows == v.Enrollments && v.Workflows == v.Enrollments
	p("Nothing lost, nothing twice (%s): %d follows answered 200 and all but %d of those friends were enrolled; %d answered with an error (LINE would redeliver those; %d of them had been stored anyway, and a redelivery would be dropped by its `webhookEventId`). %d events stored, %d still pending, %d needed a retry by the dispatcher; %d friends; %d enrollment rows for %d distinct friends and %d distinct workflow IDs; Temporal's visibility counts %d workflows on the channel, %d running (asleep).",
		map[bool]string{true: "**holds**", false: "**does not hold**"}[ok], l.OK, int64(l.OK)-v.AnsweredOKEnrolled, l.Errors, v.Stored-int64(l.OK),
		v.Stored, v.Pending, v.Retried, v.Friends, v.Enrollments, v.DistinctFriends, v.DistinctWorkflows, v.Workflows, v.Running)
	p("")
}

func (r *results) enrollSection(p func(string, ...any)) {
	ir := r.Ingest
	if ir == nil || r.Empty == nil {
		return
	}
	e := r.Empty
	p("### 2. Enrollment")
	p("")
	p("Stepcast: from the first follow request to the last enrollment row (`enrollments.started_at`, written after Temporal accepted the start): %d friends in %s, **%.1f/s**; after the webhook load ended, the backlog drained at %.1f/s. The dispatcher's fetcher reads the inbox a page at a time (and the channel's active scenarios once per page) and hands each friend's events to one of 16 long-lived lanes; a follow is: insert the friend, start the workflow (`ExecuteWorkflow`, one gRPC call), insert the enrollment row; applied events are marked processed in bulk. CPUs busy from the first follow to the drained inbox: %.2f (this run %.2f, others %.2f).",
		ir.Enrolled, ir.LastEnrolled.Sub(ir.FirstFollow).Round(time.Second), ir.EnrollRate, ir.DrainRate, ir.DrainCPU.Total, ir.DrainCPU.Ours, ir.DrainCPU.Others)
	p("")
	if !ir.AllRunning.IsZero() {
		d := ir.AllRunning.Sub(ir.FirstFollow)
		p("An enrollment row means Temporal accepted the start; the workflow runs when the worker takes its first workflow task. The worker fell behind the starts: its task queue held tasks up to %s old, and the last new workflow ran its first task %s after the first follow (%s after the last enrollment row), so friends enrolled *and running*: **%.1f/s**. The lag does not move steps: `days`/`at` waits count from the follow's own timestamp, passed in the workflow's input.",
			ir.MaxTaskAge.Round(time.Second), d.Round(time.Second), ir.AllRunning.Sub(ir.LastEnrolled).Round(time.Second), ir.RunningRate())
		p("")
	}
	if ir.DB.Commits > 0 && ir.Enrolled > 0 {
		n := float64(ir.Enrolled)
		p("Application database per follow, webhook to enrollment (`pg_stat_database` of this run's database; includes this benchmark's polling, a few queries a second): %.1f transactions, %.1f rows inserted, %.1f rows updated; %d new connections (sessions) in all, %.3f per follow.",
			float64(ir.DB.Commits)/n, float64(ir.DB.Inserted)/n, float64(ir.DB.Updated)/n, ir.DB.Sessions, float64(ir.DB.Sessions)/n)
		p("")
	}
	same := ""
	if e.N == ir.Follows {
		same = ", as many as the follows,"
	}
	p("Reference: %d empty workflows%s started from %d goroutines (one client, the worker process running them on their own task queue) in %s: **%.1f starts/s** (%d errors) on the fresh server, before the ingest.", e.N, same, e.Concurrency, e.Elapsed.Round(time.Millisecond), e.Rate, e.Errors)
	if running := ir.RunningRate(); e.Done > 0 && running > 0 {
		done := float64(e.N-e.Errors) / e.Done.Seconds()
		p("Their worker ran the last of them to its end %s after the first start (polled through visibility every half second): %.1f empty workflows started *and run* per second. Against that, Stepcast's enrollments started and running: %.1f / %.1f = %.2f. This is not the target's measure, which counts starts alone; it is given because a start whose first task has not run has not begun its scenario, and both sides pay for that task here.",
			e.Done.Round(time.Millisecond), done, running, done, running/done)
	}
	if d := r.Direct; d != nil {
		p("Experiment (`-direct-enrollments`): right after the reference, %d `Enrollment` workflows of the same 5-step welcome series, with the input and search attributes the dispatcher gives a follow, were started the way the reference starts its empty ones (same client, goroutines, task queue and worker; no webhook, no application database) in %s: **%.1f starts/s** (%d errors), %.2f of the reference. Against them, Stepcast's enrollment rows: %.2f. The worker had run every one's first task %s after the first start.",
			d.N, d.Elapsed.Round(time.Millisecond), d.Rate, d.Errors, d.Rate/e.Rate, ir.EnrollRate/d.Rate, d.Done.Round(time.Millisecond))
	}
	if b := r.EmptyBurst; b != nil {
		p("A short burst of %d empty starts, just before, went at %.1f starts/s (%.2f times the reference). Until the ninth session the reference was such a burst; a few seconds of starts do not say what rate the server keeps up for minutes, so the reference is now as long as the enrollment it is compared with.", b.N, b.Rate, b.Rate/e.Rate)
	}
	p("")
}

func (r *results) deliverySection(p func(string, ...any)) {
	d := r.Delivery
	if d == nil {
		return
	}
	p("### 3. Step delivery")
	p("")
	p("%d friends followed (webhooks at %.0f/s) a scenario whose first step is `{\"days\": 0, \"at\": \"%s\"}` (UTC), so all of them were due at %s%s. They were enrolled in %s and all running (first workflow task done) %s after the first follow, %s before the due time%s. Rates count from the due time to the last push the fake LINE accepted.",
		d.Friends, r.Opts.rate, d.Due.Format("15:04"), d.Due.Format("15:04:05"),
		map[bool]string{true: "", false: fmt.Sprintf("; steps 2 to %d are each due 1 s after the previous was sent", d.Steps)}[d.Steps == 1],
		d.Setup.Round(time.Second), d.Running.Round(time.Second), d.Margin.Round(time.Second),
		map[bool]string{true: "", false: fmt.Sprintf(" (%d webhooks were refused at first and sent again, as LINE redelivers)", d.Resent)}[d.Resent == 0])
	p("The baseline is `BaselineWorkflow` in `bench/cmd/stepcast-bench/baseline.go`, written as the Temporal samples write it: per step `workflow.Sleep` until due and an ordinary activity that POSTs the push to the same fake LINE (with a retry key), default activity and worker options. %d were started (from %d goroutines, in %s, %s before their due time) with the same steps and due pattern, after Stepcast's run on the same server.",
		d.Friends, r.Opts.emptyConc, d.BaselineSetup.Round(time.Second), d.BaselineMargin.Round(time.Second))
	p("")
	p("| | pushes | sends/s | first push after due | p50 | p99 (last ≈ span) | CPUs busy (this run / others) | persistence requests per send |")
	p("|---|---|---|---|---|---|---|---|")
	row := func(name string, s sendResult) {
		per := "n/a"
		if s.Persistence != nil && s.Pushes > 0 {
			per = fmt.Sprintf("%.1f", sumOps(s.Persistence)/float64(s.Pushes))
		}
		p("| %s | %d | %.1f | %s | %s | %s | %.2f (%.2f / %.2f) | %s |", name, s.Pushes, s.Rate, ms(s.First), ms(s.P50), ms(s.P99), s.CPU.Total, s.CPU.Ours, s.CPU.Others, per)
	}
	row("Stepcast", d.Stepcast)
	row("samples-style baseline", d.Baseline)
	p("")
	s := d.Stepcast
	okOnce := s.Pushes == d.Friends*d.Steps && s.DistinctKeys == s.Pushes && s.WrongCount == 0 && s.Refused == 0 && d.DeliveryRows == int64(s.Pushes)
	p("Exactly once (%s): %d pushes accepted for %d recipients, %d distinct `X-Line-Retry-Key`s, %d recipients with other than %d push(es), %d refused; %d delivery rows with status sent.",
		map[bool]string{true: "**holds**", false: "**does not hold**"}[okOnce], s.Pushes, s.Recipients, s.DistinctKeys, s.WrongCount, d.Steps, s.Refused, d.DeliveryRows)
	p("")
	if s.DB.Commits > 0 && s.Pushes > 0 {
		n := float64(s.Pushes)
		p("Application database per Stepcast send (`pg_stat_database`, from just before the due time until every enrollment was closed: the `Deliver` and `FinishEnrollment` local activities, plus this benchmark's polling): %.1f transactions, %.1f rows inserted, %.1f rows updated; %d new connections (sessions) in all. The baseline touches no application database.",
			float64(s.DB.Commits)/n, float64(s.DB.Inserted)/n, float64(s.DB.Updated)/n, s.DB.Sessions)
		p("")
	}
	if s.Persistence != nil {
		p("Temporal persistence requests per send, from the server's `persistence_requests` counter between just before the due time and the last workflow closing (most frequent operations):")
		p("")
		p("- Stepcast: %s", topOps(s.Persistence, 8, float64(max(s.Pushes, 1))))
		p("- baseline: %s", topOps(d.Baseline.Persistence, 8, float64(max(d.Baseline.Pushes, 1))))
		p("")
	}
	p("What one workflow's history holds (%d step(s), from the timer's start to the close):", d.Steps)
	p("")
	histTable(p, d.Steps, []string{"Stepcast", "baseline"}, []*historyStats{s.History, d.Baseline.History})
}

func histTable(p func(string, ...any), steps int, names []string, hs []*historyStats) {
	p("| workflow | events | events per step | workflow tasks | activities | local activities (markers) | timers | event types |")
	p("|---|---|---|---|---|---|---|---|")
	for i, h := range hs {
		if h == nil {
			continue
		}
		p("| %s | %d | %.1f | %d | %d | %d | %d | %s |", names[i], h.Events, float64(h.Events)/float64(steps), h.workflowTasks(), h.activities(), h.localActivities(), h.timers(), h.types())
	}
	p("")
}

func (r *results) footprintSection(p func(string, ...any)) {
	p("### 4. Footprint")
	p("")
	if f := r.Footprint; f != nil && f.Stepcast != nil {
		p("History of one enrollment in a 5-step scenario (five `wait` + `message` pairs, 1 s waits, run to completion; %d friends, %d pushes), and of the samples-style workflow doing five steps:", f.Friends, f.Pushes)
		p("")
		histTable(p, 5, []string{"Stepcast, 5 steps", "baseline, 5 steps"}, []*historyStats{f.Stepcast, f.Baseline})
	}
	if len(r.Mem) > 0 {
		p("Worker process (Stepcast's worker and the idle reference workers): Go heap after two forced collections, as enrollments of the 5-step welcome series (days 1 to 14) sleep. During the ingest (and the top-up, with `-sleepers`) a sample is taken each time another 10,000 workflows have run their first task, so the worker is still busy then; the last row of each is taken with every workflow asleep. The SDK keeps up to 10,000 workflows in its sticky cache by default; the cache column is `temporal_sticky_cache_size`.")
		p("")
		p("| when | sleeping enrollments | heap (live) | heap in use | heap objects | RSS | goroutines | cached workflows |")
		p("|---|---|---|---|---|---|---|---|")
		for _, m := range r.Mem {
			p("| %s | %d | %s | %s | %d | %s | %d | %.0f |", m.Label, m.Sleeping, mib(m.Mem.HeapAlloc), mib(m.Mem.HeapInuse), m.Mem.HeapObjects, mib(m.Mem.RSS), m.Mem.Goroutines, m.Cache)
		}
		p("")
		if r.Opts.sleepers == 0 {
			p("The 100,000 figure needs `-sleepers 100000` (it enrolls the extra friends at the enrollment rate, so it takes long on this machine); it was not run here.")
			p("")
		}
	}
	if len(r.DBAfterIngest) > 0 && r.DBFriends > 0 {
		who := "all asleep in the 5-step welcome series"
		if r.Footprint != nil {
			who = "all but the footprint test's few asleep in the 5-step welcome series"
		}
		p("Application database after the ingest: %d friends, %s (sizes are `pg_total_relation_size`: table, indexes and TOAST, dead rows included):", r.DBFriends, who)
		p("")
		p("| table | rows | bytes | rows per friend | bytes per friend |")
		p("|---|---|---|---|---|")
		var rows, bytes int64
		for _, t := range r.DBAfterIngest {
			rows += t.Rows
			bytes += t.Bytes
			if t.Rows == 0 && t.Bytes <= 32768 {
				continue
			}
			p("| %s | %d | %d | %.2f | %.0f |", t.Name, t.Rows, t.Bytes, float64(t.Rows)/float64(r.DBFriends), float64(t.Bytes)/float64(r.DBFriends))
		}
		p("| **all** | %d | %d | %.2f | %.0f |", rows, bytes, float64(rows)/float64(r.DBFriends), float64(bytes)/float64(r.DBFriends))
		p("")
		p("(Empty tables of a few pages are left out of the list but counted in the total.)")
		p("")
	}
	if d := r.Delivery; d != nil && len(r.DBAfterDelivery) > 0 && len(r.DBAfterIngest) > 0 {
		before := map[string]tableSize{}
		for _, t := range r.DBAfterIngest {
			before[t.Name] = t
		}
		var parts []string
		var drows, dbytes int64
		for _, t := range r.DBAfterDelivery {
			b := before[t.Name]
			dr, db := t.Rows-b.Rows, t.Bytes-b.Bytes
			drows += dr
			dbytes += db
			if dr != 0 {
				parts = append(parts, fmt.Sprintf("%s %+.2f", t.Name, float64(dr)/float64(d.Friends)))
			}
		}
		p("Growth from the end of the ingest to the end of the delivery test, per friend of the delivery test (%d friends, %d step(s) each, every enrollment completed): %.2f rows and %.0f bytes; rows by table: %s.",
			d.Friends, d.Steps, float64(drows)/float64(d.Friends), float64(dbytes)/float64(d.Friends), strings.Join(parts, ", "))
		p("")
	}
}

func experiments(o options) []string {
	var l []string
	if o.dbMaxOpen > 0 {
		l = append(l, fmt.Sprintf("each Stepcast process may open %d database connections (`-db-max-open`; production: as `models.Open` sets it)", o.dbMaxOpen))
	}
	if o.dbMaxIdle > 0 {
		l = append(l, fmt.Sprintf("each Stepcast process keeps %d idle database connections (`-db-max-idle`; production: as `models.Open` sets it)", o.dbMaxIdle))
	}
	if o.workerPollers > 0 {
		l = append(l, fmt.Sprintf("Stepcast's worker has %d workflow and %d activity task pollers (`-worker-pollers`; production: as `worker.Options` sets them)", o.workerPollers, o.workerPollers))
	}
	if o.lanes > 0 {
		l = append(l, fmt.Sprintf("the inbox dispatcher applies events in %d lanes (`-dispatcher-lanes`; production: as `inbox.NewDispatcher` sets them)", o.lanes))
	}
	if o.workerCache > 0 {
		l = append(l, fmt.Sprintf("Stepcast's worker keeps %d workflows in its sticky cache (`-worker-cache`; production: the SDK's 10,000)", o.workerCache))
	}
	return l
}
