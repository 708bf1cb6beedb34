package workflows

import (
	"fmt"
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

// Enrollment walks one friend through one scenario version.
func Enrollment(ctx workflow.Context, in EnrollmentInput) (State, error) {
	e, err := newEnrollment(ctx, in)
	if err != nil {
		return State{}, err
	}
	return e.run(ctx)
}

type enrollment struct {
	in     EnrollmentInput
	doc    *scenario.Document
	loc    *time.Location
	log    log.Logger
	events workflow.ReceiveChannel
	state  State
	// prevAt is when the previous step finished: the base of "from: previous".
	prevAt  time.Time
	blocked bool
}

func newEnrollment(ctx workflow.Context, in EnrollmentInput) (*enrollment, error) {
	loc, err := in.Document.Location()
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("time zone: %v", err), "InvalidScenario", err)
	}
	now := workflow.Now(ctx)
	e := &enrollment{
		in:     in,
		doc:    &in.Document,
		loc:    loc,
		log:    log.With(workflow.GetLogger(ctx), "friend", in.UserID, "scenario", in.ScenarioKey, "version", in.Version),
		events: workflow.GetSignalChannel(ctx, SignalFriendEvent),
		state:  State{Status: StatusWaiting, EnrolledAt: now, Version: in.Version},
		prevAt: now,
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return e.state, nil }); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *enrollment) run(ctx workflow.Context) (State, error) {
	id := e.doc.EntryID()
	steps := 0
	for id != "" {
		node, ok := e.doc.Node(id)
		if !ok {
			return e.finish(ctx, StatusExited, fmt.Sprintf("node %q does not exist", id))
		}
		e.state.Node = node.ID
		if err := workflow.UpsertTypedSearchAttributes(ctx, AttrNode.ValueSet(node.ID)); err != nil {
			return State{}, err
		}
		switch node.Type {
		case scenario.NodeWait:
			if !e.wait(ctx, node.Wait) {
				return e.finish(ctx, StatusExited, ExitBlocked)
			}
		case scenario.NodeMessage:
			e.drainEvents(ctx)
			if e.blocked {
				return e.finish(ctx, StatusExited, ExitBlocked)
			}
			steps++
			if err := e.send(ctx, node, fmt.Sprintf("%s#%d", node.ID, steps)); err != nil {
				return State{}, err
			}
			e.prevAt = workflow.Now(ctx)
		case scenario.NodeExit:
			return e.finish(ctx, StatusExited, ExitExitNode)
		}
		id = node.Next
	}
	return e.finish(ctx, StatusCompleted, "")
}

// wait sleeps until the node's due time. It returns false if the friend
// blocked the account meanwhile. Other events are handled as they come, so
// none is left unread in the channel.
func (e *enrollment) wait(ctx workflow.Context, w *scenario.Wait) bool {
	base := e.state.EnrolledAt
	if w.From == scenario.FromPrevious {
		base = e.prevAt
	}
	due, err := w.DueAt(base, e.loc)
	if err != nil {
		// Validation refuses such documents; a bad one already published
		// moves on rather than wait for ever.
		e.log.Error("bad wait; not waiting", "error", err)
		return true
	}
	e.state.Status, e.state.NextDueAt = StatusWaiting, &due
	defer func() { e.state.NextDueAt = nil }()

	d := due.Sub(workflow.Now(ctx))
	if d <= 0 {
		e.drainEvents(ctx)
		return !e.blocked
	}
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	fired := false
	timer := workflow.NewTimer(timerCtx, d)
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(timer, func(workflow.Future) { fired = true })
	sel.AddReceive(e.events, func(c workflow.ReceiveChannel, _ bool) {
		var ev FriendEvent
		c.Receive(ctx, &ev)
		e.handle(ev)
	})
	for !fired && !e.blocked {
		sel.Select(ctx)
	}
	return !e.blocked
}

// drainEvents handles the events that arrived while the workflow was busy.
func (e *enrollment) drainEvents(ctx workflow.Context) {
	for {
		var ev FriendEvent
		if !e.events.ReceiveAsync(&ev) {
			return
		}
		e.handle(ev)
	}
}

func (e *enrollment) handle(ev FriendEvent) {
	if ev.Type == EventUnfollow {
		e.blocked = true
	}
}

func (e *enrollment) send(ctx workflow.Context, node *scenario.Node, stepKey string) error {
	e.state.Status = StatusSending
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// LINE keeps a retry key for 24 hours; past that a retry could only
		// rely on the delivery row, so give up before.
		ScheduleToCloseTimeout: 23 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	})
	var res activities.SendStepResult
	err := workflow.ExecuteActivity(ctx, a.SendStep, activities.SendStepInput{
		ChannelID: e.in.ChannelID, ScenarioID: e.in.ScenarioID, FriendID: e.in.FriendID, UserID: e.in.UserID,
		NodeID: node.ID, StepKey: stepKey, Messages: node.Message.Messages,
	}).Get(ctx, &res)
	if err != nil {
		// The step could not be delivered within a day: record it in the
		// log and the history, and go on with the scenario.
		e.log.Error("step not delivered", "node", node.ID, "error", err)
		return nil
	}
	switch res.Outcome {
	case metrics.SendSent, metrics.SendDuplicate:
		e.state.StepsSent++
	case metrics.SendSkipped:
		e.blocked = true
	}
	return nil
}

// finish records how the enrollment ended and returns its final state.
func (e *enrollment) finish(ctx workflow.Context, status, reason string) (State, error) {
	e.state.Status, e.state.ExitReason, e.state.NextDueAt = status, reason, nil
	rowStatus := models.EnrollmentCompleted
	if status == StatusExited {
		rowStatus = models.EnrollmentExited
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: time.Minute},
	})
	err := workflow.ExecuteActivity(ctx, a.FinishEnrollment, activities.FinishEnrollmentInput{Status: rowStatus, Reason: reason}).Get(ctx, nil)
	if err != nil {
		return e.state, err
	}
	e.log.Info("enrollment ended", "status", status, "reason", reason, "steps_sent", e.state.StepsSent)
	return e.state, nil
}
