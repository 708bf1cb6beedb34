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
// the same retry key, neither judged nor reserved a second time: a hold
// now could outlast LINE's 24 hours for the key, and a push that LINE had
// accepted without our hearing would then go out twice.
func (a *Activities) Deliver(ctx context.Context, in DeliverInput) (DeliverResult, error) {
	d := newDelivery(ctx, in.Step)
	begun, err := a.Store.DeliveryByKey(ctx, d.RetryKey)
	if err != nil {
		return DeliverResult{}, err
	}
	var res DeliverResult
	if begun == nil || begun.Status == models.DeliveryHeld {
		gin := GateInput{ChannelID: in.ChannelID, ScenarioID: in.ScenarioID, FriendID: in.FriendID, NodeID: in.NodeID,
			ExitAudience: in.ExitAudience, Messages: len(in.Messages), Now: in.Now}
		v, err := a.judge(ctx, gin)
		if err != nil {
			return DeliverResult{}, err
		}
		if v.mayGo() {
			d.BudgetMonth = v.res.BudgetMonth
			var ok bool
			if d, ok, err = a.Store.BeginDelivery(ctx, d, v.channel); err != nil {
				return DeliverResult{}, err
			}
			if !ok {
				v.holdForBudget()
			}
		}
		res.GateResult = v.res
		if !v.mayGo() {
			return res, a.recordHold(ctx, gin, v.res)
		}
		res.SendStepResult, err = a.push(ctx, in.Step, d, v.channel, v.friend)
		return res, err
	}
	if d, _, err = a.Store.BeginDelivery(ctx, d, nil); err != nil {
		return DeliverResult{}, err
	}
	friend, err := a.Store.FriendByID(ctx, in.FriendID)
	if err != nil {
		return DeliverResult{}, err
	}
	ch, err := a.Store.Channel(ctx, in.ChannelID)
	if err != nil {
		return DeliverResult{}, err
	}
	res.SendStepResult, err = a.push(ctx, in.Step, d, ch, friend)
	return res, err
}
