package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/stepcast/stepcast/bench/internal/benchkit"
	"github.com/stepcast/stepcast/models"
)

// ---- 1, 2 and 4 (memory, database): webhook ingest and enrollment ----

func (b *bench) ingest(ctx context.Context) error {
	o, sys := b.o, b.sys
	n := int(o.rate * o.duration.Seconds())
	hc := newLoadClient()

	// The reference: the same open-loop rate against the plain handler.
	refN := int(o.rate * min(o.refDuration, o.duration).Seconds())
	progress("ingest reference: %d GET /healthz at %.0f/s", refN, o.rate)
	c0 := takeCPU(b.pids)
	b.res.Healthz = runLoad(ctx, hc, o.rate, getRequests(sys.apiURL+"/healthz", refN), nil)
	b.res.HealthzCPU = cpuBetween(c0, takeCPU(b.pids))
	progress("  p50 %s p99 %s, %d errors", b.res.Healthz.pct(0.5), b.res.Healthz.pct(0.99), b.res.Healthz.Errors)

	ch, _, err := sys.channel(ctx, "ingest")
	if err != nil {
		return err
	}
	scID, err := sys.publish(ctx, ch, "welcome", benchkit.WelcomeSeries())
	if err != nil {
		return err
	}
	reqs, users := followRequests(sys.apiURL, ch, n)
	answeredOK := make([]bool, n) // each index is written by one goroutine
	ir := &ingestResult{Follows: n}
	b.res.Ingest = ir

	// Sample the inbox and the enrollments every second; ask the worker for
	// its heap each time another 10,000 workflows have run their first task.
	var (
		mu       sync.Mutex
		stopped  atomic.Bool
		wg       sync.WaitGroup
		nextHeap = int64(10000)
		t0       = time.Now()
	)
	sample := func() {
		db, gauge, err := sys.backlog(ctx)
		if err != nil {
			return
		}
		enrolled, _, err := sys.enrolled(ctx, scID)
		if err != nil {
			return
		}
		tb, age, _ := sys.taskBacklog(ctx, sys.queue)
		run, err := sys.running(ctx, ch)
		if err != nil {
			run = -1
		}
		mu.Lock()
		ir.Timeline = append(ir.Timeline, backlogSample{At: time.Since(t0), Backlog: db, Gauge: gauge, Enrolled: enrolled, Running: run, Tasks: tb, TaskAge: age})
		ir.MaxTaskAge = max(ir.MaxTaskAge, age)
		mu.Unlock()
		// Running: enrolled, and the first task taken by the worker.
		if run >= nextHeap {
			if m, err := b.mem(ctx, "during the ingest (worker still busy)", run); err == nil {
				mu.Lock()
				b.res.Mem = append(b.res.Mem, m)
				mu.Unlock()
			}
			for nextHeap <= run {
				nextHeap += 10000
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stopped.Load() && ctx.Err() == nil {
			sample()
			time.Sleep(time.Second)
		}
	}()

	progress("ingest: %d signed follow webhooks at %.0f/s to channel %d (scenario: 5 steps, days 1-14)", n, o.rate, ch)
	d0 := sys.dbStats(ctx)
	c1 := takeCPU(b.pids)
	if o.cpuProfile != "" {
		// This process only: the load generator, the API and the dispatcher.
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ir.Load = runLoad(ctx, hc, o.rate, reqs, func(i int, _ time.Time) { answeredOK[i] = true })
	ingestEnd := time.Now()
	ir.LoadCPU = cpuBetween(c1, takeCPU(b.pids))
	ir.LoadAvg = loadAvg()
	progress("  accepted %.1f/s, p50 %s p99 %s, %d errors", ir.Load.accepted(), ir.Load.pct(0.5), ir.Load.pct(0.99), ir.Load.Errors)
	enrolledAtEnd, _, _ := sys.enrolled(ctx, scID)
	ir.EnrolledAtLoadEnd = enrolledAtEnd

	progress("ingest: waiting for the inbox to drain (%d of %d enrolled)", enrolledAtEnd, ir.Load.OK)
	lastLog := time.Now()
	// Requests that the client gave up on may still have been stored:
	// drained is when every stored follow is enrolled.
	drained := waitUntil(ctx, o.drainWait, time.Second, func() bool {
		e, _, err1 := sys.enrolled(ctx, scID)
		bl, err2 := sys.count(ctx, "SELECT count(*) FROM webhook_events WHERE processed_at IS NULL")
		stored, err3 := sys.count(ctx, "SELECT count(*) FROM webhook_events WHERE channel_id = ?", ch)
		if time.Since(lastLog) > 30*time.Second {
			progress("  %d enrolled, backlog %d", e, bl)
			lastLog = time.Now()
		}
		return err1 == nil && err2 == nil && err3 == nil && e >= int64(ir.Load.OK) && e >= stored && bl == 0
	})
	// A start that Temporal accepted is an enrollment; its workflow runs
	// when the worker takes its first task. Wait for those too.
	if drained {
		progress("ingest: waiting for the worker to run every new workflow's first task")
		running := waitUntil(ctx, o.drainWait, time.Second, func() bool {
			n, err := sys.running(ctx, ch)
			return err == nil && n >= enrolledNow(ctx, sys, scID)
		})
		if running {
			ir.AllRunning = time.Now()
		}
	}
	c2 := takeCPU(b.pids)
	ir.DrainCPU = cpuBetween(c1, c2)
	stopped.Store(true)
	wg.Wait()
	sample()
	enrolled, last, err := sys.enrolled(ctx, scID)
	if err != nil {
		return err
	}
	ir.Enrolled, ir.LastEnrolled = enrolled, last
	ir.FirstFollow = ir.Load.Start
	ir.Drained = drained
	if enrolled > 0 {
		ir.EnrollRate = float64(enrolled) / last.Sub(ir.FirstFollow).Seconds()
		if last.After(ingestEnd) {
			ir.DrainRate = float64(enrolled-enrolledAtEnd) / last.Sub(ingestEnd).Seconds()
		}
	}
	progress("  %d enrolled in %s: %.1f/s (after the load ended: %.1f/s)", enrolled, last.Sub(ir.FirstFollow).Round(time.Second), ir.EnrollRate, ir.DrainRate)
	if !ir.AllRunning.IsZero() {
		progress("  every workflow had run its first task %s after the first follow", ir.AllRunning.Sub(ir.FirstFollow).Round(time.Second))
	}

	// Nothing lost, nothing twice.
	v := &ir.Verify
	v.Stored, _ = sys.count(ctx, "SELECT count(*) FROM webhook_events WHERE channel_id = ?", ch)
	v.Pending, _ = sys.count(ctx, "SELECT count(*) FROM webhook_events WHERE channel_id = ? AND processed_at IS NULL", ch)
	v.Retried, _ = sys.count(ctx, "SELECT count(*) FROM webhook_events WHERE channel_id = ? AND attempts > 0", ch)
	v.Friends, _ = sys.count(ctx, "SELECT count(*) FROM friends WHERE channel_id = ?", ch)
	v.Enrollments = enrolled
	var okUsers []string
	for i, ok := range answeredOK {
		if ok {
			okUsers = append(okUsers, users[i])
		}
	}
	for c := range slices.Chunk(okUsers, 10000) {
		k, err := sys.count(ctx, `SELECT count(*) FROM enrollments e JOIN friends f ON f.id = e.friend_id
			WHERE e.scenario_id = ? AND f.user_id IN ?`, scID, c)
		if err != nil {
			return err
		}
		v.AnsweredOKEnrolled += k
	}
	v.DistinctFriends, _ = sys.count(ctx, "SELECT count(DISTINCT friend_id) FROM enrollments WHERE scenario_id = ?", scID)
	v.DistinctWorkflows, _ = sys.count(ctx, "SELECT count(DISTINCT workflow_id) FROM enrollments WHERE scenario_id = ?", scID)
	q := fmt.Sprintf("TaskQueue = '%s' AND StepcastChannel = '%d'", sys.queue, ch)
	waitUntil(ctx, time.Minute, time.Second, func() bool {
		v.Workflows, err = sys.countWorkflows(ctx, q)
		return err == nil && v.Workflows >= enrolled
	})
	v.Running, _ = sys.countWorkflows(ctx, q+" AND ExecutionStatus = 'Running'")
	if !drained {
		return fmt.Errorf("the inbox did not drain within %s: %d of %d enrolled", o.drainWait, enrolled, ir.Load.OK)
	}

	// Memory with the enrollments asleep.
	time.Sleep(statsQuiet)
	ir.DB = sys.dbStats(ctx).minus(d0)
	if m, err := b.mem(ctx, "all asleep (quiescent)", enrolled); err == nil {
		b.res.Mem = append(b.res.Mem, m)
	}
	if o.sleepers > int(enrolled) {
		if err := b.topUp(ctx, ch, scID, o.sleepers-int(enrolled)); err != nil {
			return err
		}
	}

	// Database footprint with every friend asleep in the 5-step scenario.
	b.res.DBAfterIngest, err = tableSizes(ctx, sys.store)
	if err != nil {
		return err
	}
	b.res.DBFriends, _ = sys.count(ctx, "SELECT count(*) FROM friends")
	return nil
}

// topUp enrolls more sleeping friends for the memory figure.
func (b *bench) topUp(ctx context.Context, ch, scID uint, more int) error {
	sys := b.sys
	before, _, _ := sys.enrolled(ctx, scID)
	target := before + int64(more)
	progress("memory: %d more follows at %.0f/s, up to %d sleeping enrollments", more, b.o.rate, target)
	reqs, _ := followRequests(sys.apiURL, ch, more)
	next := (before/10000 + 1) * 10000
	var wg sync.WaitGroup
	var stop atomic.Bool
	defer func() { stop.Store(true); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() && ctx.Err() == nil {
			e, err := sys.running(ctx, ch)
			if err == nil && e >= next && e < target {
				if m, err := b.mem(ctx, "during the top-up (worker still busy)", e); err == nil {
					b.res.Mem = append(b.res.Mem, m)
				}
				for next <= e {
					next += 10000
				}
			}
			time.Sleep(2 * time.Second)
		}
	}()
	_, _, err := deliverAll(ctx, b.o.rate, reqs)
	if err != nil {
		return fmt.Errorf("top-up follows: %w", err)
	}
	lastLog := time.Now()
	ok := waitUntil(ctx, b.o.drainWait*4, 2*time.Second, func() bool {
		e, _, _ := sys.enrolled(ctx, scID)
		if time.Since(lastLog) > 60*time.Second {
			progress("  %d enrolled", e)
			lastLog = time.Now()
		}
		if e < target {
			return false
		}
		n, err := sys.running(ctx, ch)
		return err == nil && n >= target
	})
	stop.Store(true)
	wg.Wait()
	e, _, _ := sys.enrolled(ctx, scID)
	if !ok {
		return fmt.Errorf("top-up: only %d of %d enrolled and running", e, target)
	}
	time.Sleep(5 * time.Second)
	if m, err := b.mem(ctx, "all asleep (quiescent)", e); err == nil {
		b.res.Mem = append(b.res.Mem, m)
	}
	return nil
}

type tableSize struct {
	Name        string
	Rows, Bytes int64
}

func tableSizes(ctx context.Context, store *models.Store) ([]tableSize, error) {
	var names []string
	if err := store.DB.WithContext(ctx).Raw("SELECT relname FROM pg_stat_user_tables ORDER BY relname").Scan(&names).Error; err != nil {
		return nil, err
	}
	out := make([]tableSize, 0, len(names))
	for _, n := range names {
		t := tableSize{Name: n}
		if err := store.DB.WithContext(ctx).Raw(fmt.Sprintf(`SELECT count(*) FROM %q`, n)).Scan(&t.Rows).Error; err != nil {
			return nil, err
		}
		if err := store.DB.WithContext(ctx).Raw("SELECT pg_total_relation_size(?::regclass)", fmt.Sprintf("%q", n)).Scan(&t.Bytes).Error; err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// ---- 4 (history): a 5-step enrollment and the same five steps in the
// samples' style ----

func (b *bench) footprint(ctx context.Context) error {
	sys := b.sys
	ch, token, err := sys.channel(ctx, "footprint")
	if err != nil {
		return err
	}
	waits := make([]map[string]any, 5)
	for i := range waits {
		waits[i] = map[string]any{"after": "1s"}
		if i > 0 {
			waits[i]["from"] = "previous"
		}
	}
	scID, err := sys.publish(ctx, ch, "five-steps", benchkit.StepsDoc("Five steps", waits))
	if err != nil {
		return err
	}
	n := max(b.o.footprintN, 1)
	progress("footprint: %d friends through a 5-step scenario (1s waits), and %d baseline workflows", n, n)
	reqs, _ := followRequests(sys.apiURL, ch, n)
	if _, _, err := deliverAll(ctx, 50, reqs); err != nil {
		return fmt.Errorf("footprint follows: %w", err)
	}
	if !waitUntil(ctx, 5*time.Minute, 500*time.Millisecond, func() bool {
		done, _ := sys.count(ctx, "SELECT count(*) FROM enrollments WHERE scenario_id = ? AND status = ?", scID, models.EnrollmentCompleted)
		return done >= int64(n)
	}) {
		return fmt.Errorf("the 5-step enrollments did not complete within 5 minutes")
	}
	var e models.Enrollment
	if err := sys.store.DB.WithContext(ctx).Where("scenario_id = ?", scID).Order("id").First(&e).Error; err != nil {
		return err
	}
	fp := &footprintResult{Pushes: sys.pushes.n(token), Friends: n}
	b.res.Footprint = fp
	if fp.Stepcast, err = readHistory(ctx, sys.bench, e.WorkflowID, e.RunID); err != nil {
		return err
	}

	var runs []client.WorkflowRun
	for i := range n {
		run, err := sys.bench.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: fmt.Sprintf("baseline5-%s-%d", b.runID, i), TaskQueue: sys.baseQ,
		}, "BaselineWorkflow", BaselineInput{UserID: userID(), FirstDue: time.Now().Add(time.Second), Steps: 5, Gap: time.Second})
		if err != nil {
			return err
		}
		runs = append(runs, run)
	}
	for _, r := range runs {
		if err := r.Get(ctx, nil); err != nil {
			return err
		}
	}
	fp.Baseline, err = readHistory(ctx, sys.bench, runs[0].GetID(), runs[0].GetRunID())
	return err
}

// ---- 3: step delivery, many friends due at once ----

func (b *bench) delivery(ctx context.Context) error {
	o, sys := b.o, b.sys
	F, S := o.friends, max(o.steps, 1)
	ch, token, err := sys.channel(ctx, "delivery")
	if err != nil {
		return err
	}
	// The first step is due at one whole minute for everybody: far enough
	// ahead that all F are enrolled by then, judged from the enrollment
	// rate measured by the ingest phase (or the empty-start rate).
	// The rate that matters is of workflows running, not of starts: a
	// `days/at` wait is set when the workflow's first task runs.
	rate := 40.0
	if ir := b.res.Ingest; ir != nil && ir.RunningRate() > 0 {
		rate = ir.RunningRate()
	} else if e := b.res.startRate(); e > 0 {
		rate = e / 6
	}
	est := time.Duration((float64(F)/rate*1.2 + float64(F)/o.rate + 15) * float64(time.Second))
	due := time.Now().Add(est).Truncate(time.Minute).Add(time.Minute).UTC()
	waits := []map[string]any{{"days": 0, "at": due.Format("15:04")}}
	for range S - 1 {
		waits = append(waits, map[string]any{"after": "1s", "from": "previous"})
	}
	scID, err := sys.publish(ctx, ch, "due-at-once", benchkit.StepsDoc("Due at once", waits))
	if err != nil {
		return err
	}
	dr := &deliveryResult{Friends: F, Steps: S, Due: due}
	b.res.Delivery = dr
	progress("delivery: %d follows at %.0f/s; %d step(s) each, the first due for all at %s UTC", F, o.rate, S, due.Format("15:04:05"))
	reqs, _ := followRequests(sys.apiURL, ch, F)
	start := time.Now()
	_, resent, err := deliverAll(ctx, o.rate, reqs)
	if err != nil {
		return fmt.Errorf("delivery follows: %w", err)
	}
	dr.Resent = resent
	// Enrolled, and the workflow's first task run: a `days/at` wait counts
	// from the time that task runs.
	if !waitUntil(ctx, time.Until(due), time.Second, func() bool {
		e, _, _ := sys.enrolled(ctx, scID)
		if e < int64(F) {
			return false
		}
		n, err := sys.running(ctx, ch)
		return err == nil && n >= int64(F)
	}) {
		e, _, _ := sys.enrolled(ctx, scID)
		return fmt.Errorf("only %d of %d friends were enrolled and running by the due time %s; the rest would be due tomorrow", e, F, due.Format("15:04"))
	}
	dr.Running = time.Since(start)
	_, lastEnroll, _ := sys.enrolled(ctx, scID)
	dr.Setup = lastEnroll.Sub(start)
	dr.Margin = time.Until(due)
	progress("  enrolled in %s; %s before the due time", dr.Setup.Round(time.Second), dr.Margin.Round(time.Second))
	time.Sleep(time.Until(due.Add(-2 * time.Second)))
	p0, c0, d0 := b.persistence(ctx), takeCPU(b.pids), sys.dbStats(ctx)
	if err := b.awaitSends(ctx, token, F*S, due, &dr.Stepcast); err != nil {
		return err
	}
	waitUntil(ctx, 5*time.Minute, time.Second, func() bool {
		done, _ := sys.count(ctx, "SELECT count(*) FROM enrollments WHERE scenario_id = ? AND status <> ?", scID, models.EnrollmentRunning)
		return done >= int64(F)
	})
	dr.Stepcast.CPU = cpuBetween(c0, takeCPU(b.pids))
	dr.Stepcast.Persistence = diffOps(p0, b.persistence(ctx))
	time.Sleep(statsQuiet)
	dr.Stepcast.DB = sys.dbStats(ctx).minus(d0)
	// Exactly once: one push per step and friend, each with its own retry key.
	keys, users := map[string]bool{}, map[string]int{}
	for _, p := range sys.line.Pushes() {
		if p.ChannelToken != token {
			continue
		}
		keys[p.RetryKey] = true
		for _, u := range p.To {
			users[u]++
		}
	}
	dr.Stepcast.DistinctKeys = len(keys)
	for _, c := range users {
		if c != S {
			dr.Stepcast.WrongCount++
		}
	}
	dr.Stepcast.Recipients = len(users)
	dr.DeliveryRows, _ = sys.count(ctx, "SELECT count(*) FROM deliveries WHERE scenario_id = ? AND status = 'sent'", scID)
	var e models.Enrollment
	if err := sys.store.DB.WithContext(ctx).Where("scenario_id = ?", scID).Order("id").First(&e).Error; err == nil {
		dr.Stepcast.History, _ = readHistory(ctx, sys.bench, e.WorkflowID, e.RunID)
	}
	dbAfter, _ := tableSizes(ctx, sys.store)
	b.res.DBAfterDelivery = dbAfter

	// The baseline: the same friends and steps, in the samples' style.
	srate := 50.0
	if e := b.res.startRate(); e > 0 {
		srate = e
	}
	due2 := time.Now().Add(time.Duration((float64(F)/srate*1.5 + 20) * float64(time.Second))).Truncate(time.Second)
	dr.BaselineDue = due2
	progress("baseline: starting %d workflows from %d goroutines, the first step due for all at %s", F, o.emptyConc, due2.Format("15:04:05"))
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	bstart := time.Now()
	for range o.emptyConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(F) {
					return
				}
				_, err := sys.bench.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
					ID: fmt.Sprintf("baseline-%s-%d", b.runID, i), TaskQueue: sys.baseQ,
				}, "BaselineWorkflow", BaselineInput{UserID: userID(), FirstDue: due2, Steps: S, Gap: time.Second})
				if err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	dr.BaselineSetup = time.Since(bstart)
	dr.BaselineMargin = time.Until(due2)
	if errs.Load() > 0 {
		return fmt.Errorf("baseline: %d starts failed", errs.Load())
	}
	if dr.BaselineMargin < 2*time.Second {
		b.res.Notes = append(b.res.Notes, fmt.Sprintf("The baseline's starts ended only %s before its due time: some of its steps were not due at once.", dr.BaselineMargin.Round(time.Millisecond)))
	}
	progress("  started in %s; %s before the due time", dr.BaselineSetup.Round(time.Second), dr.BaselineMargin.Round(time.Second))
	time.Sleep(time.Until(due2.Add(-2 * time.Second)))
	p0, c0 = b.persistence(ctx), takeCPU(b.pids)
	if err := b.awaitSends(ctx, baselineToken, F*S, due2, &dr.Baseline); err != nil {
		return err
	}
	waitUntil(ctx, 5*time.Minute, time.Second, func() bool {
		left, err := sys.countWorkflows(ctx, fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running'", sys.baseQ))
		return err == nil && left == 0
	})
	dr.Baseline.CPU = cpuBetween(c0, takeCPU(b.pids))
	dr.Baseline.Persistence = diffOps(p0, b.persistence(ctx))
	dr.Baseline.History, _ = readHistory(ctx, sys.bench, fmt.Sprintf("baseline-%s-0", b.runID), "")
	return nil
}

// awaitSends waits for n accepted pushes with the token and measures their
// rate from the due time.
func (b *bench) awaitSends(ctx context.Context, token string, n int, due time.Time, sr *sendResult) error {
	progress("  waiting for %d pushes", n)
	// Pushes with the token before now (the footprint test's) do not count.
	all, failed0 := b.sys.pushes.accepted(token)
	n0 := len(all)
	lastLog := time.Now()
	ok := waitUntil(ctx, b.o.drainWait, 200*time.Millisecond, func() bool {
		c := b.sys.pushes.n(token) - n0
		if time.Since(lastLog) > 30*time.Second {
			progress("  %d pushes", c)
			lastLog = time.Now()
		}
		return c >= n
	})
	all, failed := b.sys.pushes.accepted(token)
	times := all[n0:]
	failed -= failed0
	sr.Pushes, sr.Refused = len(times), failed
	sr.Rate, sr.Span = rateOf(times, due)
	lat := make([]time.Duration, len(times))
	for i, t := range times {
		lat[i] = t.Sub(due)
	}
	slices.Sort(lat)
	sr.P50, sr.P99 = percentile(lat, 0.5), percentile(lat, 0.99)
	if len(lat) > 0 {
		sr.First = lat[0]
	}
	progress("  %d pushes in %s from the due time: %.1f/s", sr.Pushes, sr.Span.Round(time.Millisecond), sr.Rate)
	if !ok {
		return fmt.Errorf("only %d of %d pushes arrived within %s", sr.Pushes, n, b.o.drainWait)
	}
	return nil
}

func diffOps(a, b map[string]float64) map[string]float64 {
	if a == nil || b == nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func sumOps(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// topOps lists the most frequent operations.
func topOps(m map[string]float64, k int, per float64) string {
	type kv struct {
		k string
		v float64
	}
	var l []kv
	for op, v := range m {
		l = append(l, kv{op, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v })
	var s string
	for i, e := range l {
		if i == k {
			break
		}
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s %.2f", e.k, e.v/per)
	}
	return s
}

func enrolledNow(ctx context.Context, sys *system, scID uint) int64 {
	n, _, _ := sys.enrolled(ctx, scID)
	return n
}
