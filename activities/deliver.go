package activities

import (
	"context"

	"github.com/stepcast/stepcast/models"
)

// DeliverInput is a step due now, and what the gate needs to judge it.
type DeliverInput struct {
	Step
	// ExitAudience is the scenario's exit audience, if any.
	ExitAudience string
}

// DeliverResult is the gate's verdict and, when the step went, its outcome.
type DeliverResult struct {
	GateResult
	SendStepResult
}

// Deliver gates a due step and pushes it, in one local activity: one
// marker in the workflow's history and no task round trip per step.
//
// A step never begun is judged by the gate: a block, an ended scenario or
// the exit audience end the enrollment; a paused scenario, quiet hours,
// the frequency cap and the budget hold it (nothing is dropped). When it
// may go, its delivery row is written and its messages reserved in one
// transaction, before the push. A step already begun (an attempt cut off
// by a crash, or one that failed and is tried again) is pushed again with
// the same retry key, neither held nor reserved a second time: a hold
// now could outlast LINE's 24 hours for the key, and a push that LINE had
// accepted without our hearing would then go out twice.
//
// Every step is judged first, so that the common one, new and free to go,
// costs one read and one write before its push: BeginDelivery hands a
// begun row back as it is, and whether the step was begun is only asked
// when the verdict would hold or end it.
func (a *Activities) Deliver(ctx context.Context, in DeliverInput) (DeliverResult, error) {
	gin := GateInput{ChannelID: in.ChannelID, ScenarioID: in.ScenarioID, FriendID: in.FriendID, NodeID: in.NodeID,
		ExitAudience: in.ExitAudience, Messages: len(in.Messages), Now: in.Now}
	v, err := a.judge(ctx, gin)
	if err != nil {
		return DeliverResult{}, err
	}
	d := newDelivery(ctx, in.Step)
	if !v.mayGo() {
		begun, err := a.Store.DeliveryByKey(ctx, d.RetryKey)
		if err != nil {
			return DeliverResult{}, err
		}
		if begun == nil || begun.Status == models.DeliveryHeld {
			return DeliverResult{GateResult: v.res}, a.recordHold(ctx, gin, v.res)
		}
		// Begun before: pushed again, and the verdict kept from the
		// workflow (see above).
		if d, _, err = a.Store.BeginDelivery(ctx, d, nil); err != nil {
			return DeliverResult{}, err
		}
		var res DeliverResult
		res.SendStepResult, err = a.push(ctx, in.Step, d, v.channel, v.friend)
		return res, err
	}
	d.BudgetMonth = v.res.BudgetMonth
	d, ok, err := a.Store.BeginDelivery(ctx, d, v.channel)
	if err != nil {
		return DeliverResult{}, err
	}
	if !ok {
		v.holdForBudget()
		return DeliverResult{GateResult: v.res}, a.recordHold(ctx, gin, v.res)
	}
	res := DeliverResult{GateResult: v.res}
	res.SendStepResult, err = a.push(ctx, in.Step, d, v.channel, v.friend)
	return res, err
}
