package workflows

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// a refers to the activities by method value; the worker registers the real
// struct.
var a *activities.Activities

// heldRecheck is how often a held step asks again whether its scenario was
// resumed, in case the resume signal never came.
const heldRecheck = time.Hour

// Enrollment walks one friend through one scenario version.
func Enrollment(ctx workflow.Context, in EnrollmentInput) (State, error) {
	e, err := newEnrollment(ctx, in)
	if err != nil {
		return State{}, err
	}
	return e.run(ctx)
}

type enrollment struct {
	in      EnrollmentInput
	doc     *scenario.Document
	loc     *time.Location
	log     log.Logger
	events  workflow.ReceiveChannel
	control workflow.ReceiveChannel
	state   State
	// prevAt is when the previous node finished: the base of "from: previous".
	prevAt time.Time
	// exit is set when something ends the enrollment early.
	exit  string
	steps int
	// gated is a run started before deliverChange.
	gated bool
}

func newEnrollment(ctx workflow.Context, in EnrollmentInput) (*enrollment, error) {
	loc, err := in.Document.Location()
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("time zone: %v", err), "InvalidScenario", err)
	}
	now := workflow.Now(ctx)
	if !in.EnrolledAt.IsZero() && in.EnrolledAt.Before(now) {
		now = in.EnrolledAt
	}
	e := &enrollment{
		in:      in,
		doc:     &in.Document,
		loc:     loc,
		log:     log.With(workflow.GetLogger(ctx), "friend", in.UserID, "scenario", in.ScenarioKey, "version", in.Version),
		events:  workflow.GetSignalChannel(ctx, SignalFriendEvent),
		control: workflow.GetSignalChannel(ctx, SignalControl),
		state:   State{Status: StatusRunning, EnrolledAt: now, Version: in.Version},
		prevAt:  now,
	}
	if in.Revision < revisionDeliver {
		// Runs started before revisions were passed in the input:
		// deliverChange was decided at the start, in the run's first
		// workflow task, where its marker is.
		e.gated = workflow.GetVersion(ctx, deliverChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return e.state, nil }); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *enrollment) run(ctx workflow.Context) (State, error) {
	id := e.doc.EntryID()
	for id != "" && e.exit == "" {
		node, ok := e.doc.Node(id)
		if !ok {
			return e.finish(ctx, StatusExited, fmt.Sprintf("node %q does not exist", id))
		}
		e.state.Node = node.ID
		e.state.Status = StatusRunning
		next, outcome, err := e.step(ctx, node)
		if err != nil {
			return e.state, err
		}
		// "from: previous" counts from when the previous step finished,
		// whatever kind of step it was.
		e.prevAt = workflow.Now(ctx)
		e.state.Path = append(e.state.Path, Visit{Node: node.ID, At: e.prevAt, Outcome: outcome})
		if err := e.recordDecision(ctx, node, outcome); err != nil {
			return e.state, err
		}
		e.drain(ctx)
		id = next
	}
	if e.exit != "" {
		return e.finish(ctx, StatusExited, e.exit)
	}
	return e.finish(ctx, StatusCompleted, "")
}

// step runs one node and returns the next node and the path taken.
func (e *enrollment) step(ctx workflow.Context, n *scenario.Node) (next, outcome string, err error) {
	switch n.Type {
	case scenario.NodeWait:
		if err := e.markWaiting(ctx, n.ID, StatusWaiting); err != nil {
			return "", "", err
		}
		e.sleep(ctx, e.due(n.Wait), nil)
		return n.Next, "", nil
	case scenario.NodeMessage:
		outcome, err := e.send(ctx, n)
		return n.Next, outcome, err
	case scenario.NodeBranch:
		return e.branch(ctx, n)
	case scenario.NodeWaitEvent:
		if err := e.markWaiting(ctx, n.ID, StatusWaitingForEvent); err != nil {
			return "", "", err
		}
		if e.sleep(ctx, e.due(&n.WaitEvent.Timeout), &n.WaitEvent.Event) {
			return n.WaitEvent.OnEvent, "event", nil
		}
		return n.WaitEvent.OnTimeout, "timeout", nil
	case scenario.NodeSplit:
		i := splitPath(n.Split, e.in.UserID+"/"+e.in.ScenarioKey+"/"+n.ID)
		return n.Split.Paths[i].Next, fmt.Sprintf("path %d", i), nil
	case scenario.NodeTag:
		err := e.local(ctx, a.ApplyTags, activities.ApplyTagsInput{
			FriendID: e.in.FriendID, Add: n.Tag.Add, Remove: n.Tag.Remove}, nil)
		return n.Next, "", err
	case scenario.NodeExit:
		e.exit = ExitExitNode
		return "", "", nil
	}
	return "", "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("node %q has unknown type %q", n.ID, n.Type), "InvalidScenario", nil)
}

// markWaiting shows where the friend sits, in the query and in the
// StepcastNode search attribute. Only waiting nodes set the attribute: that
// is where a friend can be found, and it saves a history event per step.
// Runs of revisionNodeAtStart on skip an upsert of the value the attribute
// already holds (the entry wait, set at the start); older runs upserted it
// and replay the upsert.
func (e *enrollment) markWaiting(ctx workflow.Context, node, status string) error {
	e.state.Status = status
	if e.in.Revision >= revisionNodeAtStart {
		if cur, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(AttrNode); ok && cur == node {
			return nil
		}
	}
	return workflow.UpsertTypedSearchAttributes(ctx, AttrNode.ValueSet(node))
}

func (e *enrollment) due(w *scenario.Wait) time.Time {
	base := e.state.EnrolledAt
	if w.From == scenario.FromPrevious {
		base = e.prevAt
	}
	due, err := w.DueAt(base, e.loc)
	if err != nil {
		// Validation refuses such documents; one already running moves on
		// rather than wait for ever.
		e.log.Error("bad wait; not waiting", "error", err)
		return base
	}
	return due
}

// sleep waits until due, handling events and control signals as they come,
// so none is left unread. With match set it returns true as soon as a
// matching event arrives. It returns early when the enrollment must exit.
func (e *enrollment) sleep(ctx workflow.Context, due time.Time, match *scenario.EventCond) bool {
	e.state.NextDueAt = &due
	defer func() { e.state.NextDueAt = nil }()
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	fired, matched := false, false
	sel := workflow.NewSelector(ctx)
	if d := due.Sub(workflow.Now(ctx)); d > 0 {
		sel.AddFuture(workflow.NewTimer(timerCtx, d), func(workflow.Future) { fired = true })
	} else {
		fired = true
	}
	sel.AddReceive(e.events, func(c workflow.ReceiveChannel, _ bool) {
		var ev FriendEvent
		c.Receive(ctx, &ev)
		e.handle(ev)
		if match != nil && match.Matches(&ev, e.in.ScenarioKey) {
			matched = true
		}
	})
	sel.AddReceive(e.control, func(c workflow.ReceiveChannel, _ bool) {
		var ctl Control
		c.Receive(ctx, &ctl)
		e.handleControl(ctl)
	})
	e.drain(ctx)
	for !fired && !matched && e.exit == "" {
		sel.Select(ctx)
	}
	return matched
}

// drain handles the signals that arrived while the workflow was busy.
func (e *enrollment) drain(ctx workflow.Context) {
	for {
		var ev FriendEvent
		if !e.events.ReceiveAsync(&ev) {
			break
		}
		e.handle(ev)
	}
	for {
		var ctl Control
		if !e.control.ReceiveAsync(&ctl) {
			break
		}
		e.handleControl(ctl)
	}
}

func (e *enrollment) handle(ev FriendEvent) {
	if ev.Type == EventUnfollow {
		e.exit = ExitBlocked
		return
	}
	if e.doc.Exit != nil {
		for i := range e.doc.Exit.Events {
			if e.doc.Exit.Events[i].Matches(&ev, e.in.ScenarioKey) {
				e.exit = ExitEvent
				return
			}
		}
	}
}

// handleControl ends the enrollment on an end signal; the others (pause,
// resume, recheck) only wake a held step, which asks the gate again: the
// database has the last word.
func (e *enrollment) handleControl(ctl Control) {
	if ctl.Action == ControlEnd {
		e.exit = ExitScenarioEnded
	}
}

// deliverChange is the GetVersion change that merged the gate and the push
// into the Deliver local activity. Runs started before it replay the gate
// local activity and the SendStep activity (sendGated). Runs started with
// a Revision skip the question: revisionDeliver, the first revision,
// always delivers with Deliver. revisionNodeAtStart: the run started with
// StepcastNode set (StartSearchAttributes) and upserts only a change.
const (
	deliverChange       = "deliver-local-activity"
	revisionDeliver     = 1
	revisionNodeAtStart = 2
)

// sendGiveUp bounds the tries of one step: LINE keeps a retry key for 24
// hours, and past that a retry could only rely on the delivery row.
const sendGiveUp = 23 * time.Hour

// send delivers a message node: a paused scenario, quiet hours, the
// frequency cap or the budget hold the step until it may go (nothing
// skipped); an ended scenario, a block or the exit audience end the
// enrollment. The step key is fixed before the first try, so a held or
// retried step keeps its retry key.
func (e *enrollment) send(ctx workflow.Context, n *scenario.Node) (string, error) {
	e.steps++
	key := fmt.Sprintf("%s#%d", n.ID, e.steps)
	if e.gated {
		return e.sendGated(ctx, n, key)
	}
	step := activities.Step{
		ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, ScenarioKey: e.in.ScenarioKey,
		FriendID: e.in.FriendID, UserID: e.in.UserID, NodeID: n.ID, StepKey: key, Messages: n.Message.Messages,
	}
	// firstFailure starts the 23 hours: a failed try follows (or is) the
	// step's first push with its key. A hold (of a step not yet begun)
	// starts the count again.
	var firstFailure time.Time
	for failures := 0; ; {
		e.drain(ctx)
		if e.exit != "" {
			return "", nil
		}
		step.Now = workflow.Now(ctx)
		var r activities.DeliverResult
		err := workflow.ExecuteLocalActivity(deliverCtx(ctx), a.Deliver,
			activities.DeliverInput{Step: step, ExitAudience: e.exitAudience()}).Get(ctx, &r)
		if err != nil {
			// LINE or the database failed. The step is tried again, with
			// the same retry key, until a day has passed; then it is in
			// the log and the history, and the scenario goes on.
			failures++
			if failures == 1 {
				firstFailure = step.Now
			}
			next := step.Now.Add(retryWait(failures))
			if next.Sub(firstFailure) > sendGiveUp {
				e.log.Error("step not delivered", "node", n.ID, "tries", failures, "error", err)
				return metrics.SendFailed, nil
			}
			e.log.Warn("step will be tried again", "node", n.ID, "tries", failures, "error", err)
			if err := e.hold(ctx, HeldRetrying, next); err != nil {
				return "", err
			}
			continue
		}
		if e.exitFor(r.GateResult) {
			return "", nil
		}
		if r.HoldReason != "" {
			failures = 0
			if err := e.hold(ctx, r.HoldReason, holdEnd(r.GateResult, step.Now)); err != nil {
				return "", err
			}
			continue
		}
		switch r.Outcome {
		case metrics.SendHeld:
			continue // the gate now holds the channel's steps
		case metrics.SendSent, metrics.SendDuplicate:
			e.state.StepsSent++
		case metrics.SendSkipped:
			e.exit = ExitBlocked
		}
		return r.Outcome, nil
	}
}

// retryWait is the wait before the next try of a failed local activity:
// from a second, doubling, up to five minutes.
func retryWait(failures int) time.Duration {
	return min(time.Second<<min(failures-1, 20), 5*time.Minute)
}

// sendGated is send for runs started before deliverChange: the gate local
// activity, then the SendStep activity.
func (e *enrollment) sendGated(ctx workflow.Context, n *scenario.Node, key string) (string, error) {
	opts := workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: sendGiveUp,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	}
	for {
		g, err := e.gate(ctx, len(n.Message.Messages))
		if err != nil || e.exit != "" {
			return "", err
		}
		var res activities.SendStepResult
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), a.SendStep, activities.SendStepInput{
			Step: activities.Step{
				ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, ScenarioKey: e.in.ScenarioKey,
				FriendID: e.in.FriendID, UserID: e.in.UserID, NodeID: n.ID, StepKey: key, Messages: n.Message.Messages,
				Now: workflow.Now(ctx),
			},
			BudgetMonth: g.BudgetMonth,
		}).Get(ctx, &res)
		if err != nil {
			e.log.Error("step not delivered", "node", n.ID, "error", err)
			return metrics.SendFailed, nil
		}
		switch res.Outcome {
		case metrics.SendHeld:
			continue
		case metrics.SendSent, metrics.SendDuplicate:
			e.state.StepsSent++
		case metrics.SendSkipped:
			e.exit = ExitBlocked
		}
		return res.Outcome, nil
	}
}

// budgetRecheck bounds a budget hold, so that a raised budget is seen even
// if the signal that says so is lost.
const budgetRecheck = 6 * time.Hour

// exitFor sets e.exit when the gate's verdict ends the enrollment.
func (e *enrollment) exitFor(g activities.GateResult) bool {
	switch {
	case g.Blocked:
		e.exit = ExitBlocked
	case g.ScenarioStatus == models.ScenarioEnded:
		e.exit = ExitScenarioEnded
	case g.InExitAudience:
		e.exit = ExitAudience
	}
	return e.exit != ""
}

// holdEnd is when a held step asks the gate again: when the hold ends, and
// no later than the rechecks of a pause or a budget.
func holdEnd(g activities.GateResult, now time.Time) time.Time {
	switch {
	case g.HoldReason == activities.HoldPaused:
		return now.Add(heldRecheck)
	case g.HoldReason == activities.HoldBudget && g.HoldUntil.Sub(now) > budgetRecheck:
		return now.Add(budgetRecheck)
	}
	return g.HoldUntil
}

// gate asks whether the step may go now and holds until it may. It returns
// with e.exit set when the enrollment must end instead.
func (e *enrollment) gate(ctx workflow.Context, messages int) (activities.GateResult, error) {
	for {
		e.drain(ctx)
		if e.exit != "" {
			return activities.GateResult{}, nil
		}
		now := workflow.Now(ctx)
		var g activities.GateResult
		err := e.local(ctx, a.Gate, activities.GateInput{
			ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, FriendID: e.in.FriendID, NodeID: e.state.Node,
			ExitAudience: e.exitAudience(), Messages: messages, Now: now,
		}, &g)
		if err != nil {
			return g, err
		}
		if e.exitFor(g) || g.HoldReason == "" {
			return g, nil
		}
		if err := e.hold(ctx, g.HoldReason, holdEnd(g, now)); err != nil {
			return g, err
		}
	}
}

// hold waits until the time, or until a control signal (resume, recheck,
// end) or a block says to look again.
func (e *enrollment) hold(ctx workflow.Context, reason string, until time.Time) error {
	e.state.HeldReason, e.state.NextDueAt = reason, &until
	if err := e.markWaiting(ctx, e.state.Node, StatusHeld); err != nil {
		return err
	}
	defer func() { e.state.HeldReason, e.state.NextDueAt, e.state.Status = "", nil, StatusRunning }()
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	done := false
	sel := workflow.NewSelector(ctx)
	// Never ask the gate again without time passing: a hold whose end is
	// already here waits a second, so a gate that holds again cannot spin.
	d := max(until.Sub(workflow.Now(ctx)), time.Second)
	sel.AddFuture(workflow.NewTimer(timerCtx, d), func(workflow.Future) { done = true })
	sel.AddReceive(e.events, func(c workflow.ReceiveChannel, _ bool) {
		var ev FriendEvent
		c.Receive(ctx, &ev)
		e.handle(ev)
	})
	sel.AddReceive(e.control, func(c workflow.ReceiveChannel, _ bool) {
		var ctl Control
		c.Receive(ctx, &ctl)
		e.handleControl(ctl)
		done = true
	})
	for !done && e.exit == "" {
		sel.Select(ctx)
	}
	return nil
}

func (e *enrollment) exitAudience() string {
	if e.doc.Exit == nil {
		return ""
	}
	return e.doc.Exit.Audience
}

// branch loads the facts its conditions need and takes the first case that
// holds. The facts come from an activity, so the decision is recorded and
// replays the same.
func (e *enrollment) branch(ctx workflow.Context, n *scenario.Node) (string, string, error) {
	now := workflow.Now(ctx)
	var needs scenario.Needs
	for i := range n.Branch.Cases {
		n.Branch.Cases[i].When.Needs(&needs, now, e.state.EnrolledAt)
	}
	var facts scenario.Facts
	err := e.local(ctx, a.LoadFacts, activities.LoadFactsInput{
		ChannelID: e.in.ChannelID, FriendID: e.in.FriendID, Needs: needs, Now: now}, &facts)
	if err != nil {
		return "", "", err
	}
	for i := range n.Branch.Cases {
		if n.Branch.Cases[i].When.Eval(&facts, now, e.state.EnrolledAt, e.in.ScenarioKey) {
			return n.Branch.Cases[i].Next, fmt.Sprintf("case %d", i), nil
		}
	}
	return n.Branch.Default, "default", nil
}

// recordDecision stores the path a deciding node took, for statistics.
func (e *enrollment) recordDecision(ctx workflow.Context, n *scenario.Node, outcome string) error {
	switch n.Type {
	case scenario.NodeBranch, scenario.NodeSplit, scenario.NodeWaitEvent:
	default:
		return nil
	}
	return e.local(ctx, a.RecordVisit, activities.RecordVisitInput{
		ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, FriendID: e.in.FriendID,
		NodeID: n.ID, Outcome: outcome, At: workflow.Now(ctx)}, nil)
}

// splitPath picks a weighted path from a hash of the friend, the scenario
// and the node: the same friend always takes the same path.
func splitPath(s *scenario.Split, key string) int {
	total := 0
	for _, p := range s.Paths {
		total += p.Weight
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	r := int(h.Sum32() % uint32(total))
	for i, p := range s.Paths {
		if r < p.Weight {
			return i
		}
		r -= p.Weight
	}
	return len(s.Paths) - 1
}

// localCtx is for the short database activities: local activities record
// one marker in the history instead of three events and a task round trip.
// Each runs once per try: the workflow itself waits and tries again (local),
// with timers, so that an outage of any length delays the enrollment
// without failing it, and virtual-time tests see every try.
func localCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
}

// deliverCtx is localCtx for Deliver, which may wait for LINE: longer than
// a workflow task, which the SDK then keeps alive.
func deliverCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
}

// local runs a database local activity until it succeeds, waiting between
// tries (retryWait). Only an error marked non-retryable ends the tries.
func (e *enrollment) local(ctx workflow.Context, fn, in, out any) error {
	for failures := 1; ; failures++ {
		err := workflow.ExecuteLocalActivity(localCtx(ctx), fn, in).Get(ctx, out)
		var appErr *temporal.ApplicationError
		if err == nil || (errors.As(err, &appErr) && appErr.NonRetryable()) {
			return err
		}
		e.log.Warn("local activity will be tried again", "tries", failures, "error", err)
		if err := workflow.Sleep(ctx, retryWait(failures)); err != nil {
			return err
		}
	}
}

// finish records how the enrollment ended and returns its final state.
func (e *enrollment) finish(ctx workflow.Context, status, reason string) (State, error) {
	e.state.Status, e.state.ExitReason, e.state.NextDueAt = status, reason, nil
	rowStatus := models.EnrollmentCompleted
	if status == StatusExited {
		rowStatus = models.EnrollmentExited
	}
	err := e.local(ctx, a.FinishEnrollment, activities.FinishEnrollmentInput{Status: rowStatus, Reason: reason,
		ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, Version: e.in.Version, FriendID: e.in.FriendID,
		FollowedAt: e.in.EnrolledAt, StartedAt: workflow.GetInfo(ctx).WorkflowStartTime}, nil)
	if err != nil {
		return e.state, err
	}
	e.log.Info("enrollment ended", "status", status, "reason", reason, "steps_sent", e.state.StepsSent)
	return e.state, nil
}
