package workflows

import (
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
		err := workflow.ExecuteLocalActivity(localCtx(ctx), a.ApplyTags, activities.ApplyTagsInput{
			FriendID: e.in.FriendID, Add: n.Tag.Add, Remove: n.Tag.Remove}).Get(ctx, nil)
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
func (e *enrollment) markWaiting(ctx workflow.Context, node, status string) error {
	e.state.Status = status
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

// send delivers a message node, after the gate: a paused scenario, quiet
// hours, the frequency cap or the budget hold the step until it may go
// (nothing skipped); an ended scenario, a block or the exit audience end the
// enrollment. The step key is fixed before the first try, so a held step
// sent later has the same retry key.
func (e *enrollment) send(ctx workflow.Context, n *scenario.Node) (string, error) {
	e.steps++
	key := fmt.Sprintf("%s#%d", n.ID, e.steps)
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// LINE keeps a retry key for 24 hours; past that a retry could only
		// rely on the delivery row, so give up before.
		ScheduleToCloseTimeout: 23 * time.Hour,
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
			ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, ScenarioKey: e.in.ScenarioKey,
			FriendID: e.in.FriendID, UserID: e.in.UserID, NodeID: n.ID, StepKey: key, Messages: n.Message.Messages,
			BudgetMonth: g.BudgetMonth, Now: workflow.Now(ctx),
		}).Get(ctx, &res)
		if err != nil {
			// The step could not be delivered within a day: it is in the
			// log and the history; the scenario goes on.
			e.log.Error("step not delivered", "node", n.ID, "error", err)
			return metrics.SendFailed, nil
		}
		switch res.Outcome {
		case metrics.SendHeld:
			continue // the gate now holds the channel's steps
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
		err := workflow.ExecuteLocalActivity(localCtx(ctx), a.Gate, activities.GateInput{
			ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, FriendID: e.in.FriendID, NodeID: e.state.Node,
			ExitAudience: e.exitAudience(), Messages: messages, Now: now,
		}).Get(ctx, &g)
		if err != nil {
			return g, err
		}
		switch {
		case g.Blocked:
			e.exit = ExitBlocked
		case g.ScenarioStatus == models.ScenarioEnded:
			e.exit = ExitScenarioEnded
		case g.InExitAudience:
			e.exit = ExitAudience
		}
		if e.exit != "" || g.HoldReason == "" {
			return g, nil
		}
		until := g.HoldUntil
		switch {
		case g.HoldReason == activities.HoldPaused:
			until = now.Add(heldRecheck)
		case g.HoldReason == activities.HoldBudget && until.Sub(now) > budgetRecheck:
			until = now.Add(budgetRecheck)
		}
		if err := e.hold(ctx, g.HoldReason, until); err != nil {
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
	err := workflow.ExecuteLocalActivity(localCtx(ctx), a.LoadFacts, activities.LoadFactsInput{
		ChannelID: e.in.ChannelID, FriendID: e.in.FriendID, Needs: needs, Now: now}).Get(ctx, &facts)
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
	return workflow.ExecuteLocalActivity(localCtx(ctx), a.RecordVisit, activities.RecordVisitInput{
		ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, FriendID: e.in.FriendID,
		NodeID: n.ID, Outcome: outcome, At: workflow.Now(ctx)}).Get(ctx, nil)
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
func localCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
}

// finish records how the enrollment ended and returns its final state.
func (e *enrollment) finish(ctx workflow.Context, status, reason string) (State, error) {
	e.state.Status, e.state.ExitReason, e.state.NextDueAt = status, reason, nil
	rowStatus := models.EnrollmentCompleted
	if status == StatusExited {
		rowStatus = models.EnrollmentExited
	}
	err := workflow.ExecuteLocalActivity(localCtx(ctx), a.FinishEnrollment,
		activities.FinishEnrollmentInput{Status: rowStatus, Reason: reason}).Get(ctx, nil)
	if err != nil {
		return e.state, err
	}
	e.log.Info("enrollment ended", "status", status, "reason", reason, "steps_sent", e.state.StepsSent)
	return e.state, nil
}
