package activities

import (
	"context"
	"time"

	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// Hold reasons: why a due step waits.
const (
	HoldPaused       = "scenario paused"
	HoldQuietHours   = "quiet hours"
	HoldFrequencyCap = "frequency cap"
	HoldBudget       = "budget"
)

// GateInput names the step about to be sent.
type GateInput struct {
	ChannelID  uint
	ScenarioID uint
	FriendID   uint
	NodeID     string
	// ExitAudience is the scenario's exit audience, if any.
	ExitAudience string
	// Messages is how many messages the step pushes: what it takes from
	// the budget.
	Messages int
	// Now is the workflow's time; quiet hours, caps and months are judged
	// at it.
	Now time.Time
}

// GateResult says whether the step may be sent now.
type GateResult struct {
	// ScenarioStatus is the scenario's status: active, paused or ended.
	ScenarioStatus string
	Blocked        bool
	InExitAudience bool
	// HoldReason, when set, says why the step must wait, and HoldUntil when
	// to ask again.
	HoldReason string
	HoldUntil  time.Time
	// BudgetMonth is the month the step's messages are reserved from (by
	// Gate) or to be reserved from (by Deliver, with the delivery row).
	// Empty when the channel has no budget.
	BudgetMonth string
}

// Gate is asked before each send by enrollments that started before
// Deliver took its place (their histories replay it). A block, an ended
// scenario or the exit audience end the enrollment; a paused scenario,
// quiet hours, the frequency cap and the monthly budget hold the step
// (nothing is dropped). When the step may go, its messages are reserved
// from the budget, so concurrent sends cannot overspend it.
func (a *Activities) Gate(ctx context.Context, in GateInput) (GateResult, error) {
	v, err := a.judge(ctx, in)
	if err != nil {
		return GateResult{}, err
	}
	if v.mayGo() {
		ok, err := a.Store.ReserveBudget(ctx, v.channel, v.res.BudgetMonth, int64(in.Messages))
		if err != nil {
			return GateResult{}, err
		}
		if !ok {
			v.holdForBudget()
		}
	}
	return v.res, a.recordHold(ctx, in, v.res)
}

// verdict is the gate's judgement of a step, before any reservation.
type verdict struct {
	res       GateResult
	channel   *models.Channel
	friend    *models.Friend
	nextMonth time.Time
}

// mayGo reports whether nothing ends or holds the step; its messages are
// then to be reserved from res.BudgetMonth.
func (v *verdict) mayGo() bool {
	return !v.res.Blocked && v.res.ScenarioStatus != models.ScenarioEnded && !v.res.InExitAudience && v.res.HoldReason == ""
}

// holdForBudget holds the step until the budget's next month.
func (v *verdict) holdForBudget() {
	v.res.HoldReason, v.res.HoldUntil, v.res.BudgetMonth = HoldBudget, v.nextMonth, ""
}

// recordHold counts a held step for the scenario's statistics.
func (a *Activities) recordHold(ctx context.Context, in GateInput, res GateResult) error {
	if res.HoldReason == "" {
		return nil
	}
	return a.Store.RecordStepEvent(ctx, &models.StepEvent{ChannelID: in.ChannelID, ScenarioID: in.ScenarioID,
		NodeID: in.NodeID, FriendID: in.FriendID, Kind: models.StepHeld, Outcome: res.HoldReason, At: in.Now})
}

// judge applies the gate's rules, in order, to a step due now.
func (a *Activities) judge(ctx context.Context, in GateInput) (*verdict, error) {
	st, err := a.Store.StepState(ctx, in.ChannelID, in.ScenarioID, in.FriendID)
	if err != nil {
		return nil, err
	}
	f, ch := &st.Friend, &st.Channel
	v := &verdict{res: GateResult{ScenarioStatus: st.ScenarioStatus, Blocked: f.Status == models.FriendBlocked}, channel: ch, friend: f}
	if v.res.Blocked || st.ScenarioStatus == models.ScenarioEnded {
		return v, nil
	}
	if in.ExitAudience != "" {
		if v.res.InExitAudience, err = a.InAudience(ctx, in.ChannelID, in.ExitAudience, f, in.Now, 0); err != nil || v.res.InExitAudience {
			return v, err
		}
	}
	if st.ScenarioStatus == models.ScenarioPaused {
		v.res.HoldReason = HoldPaused
		return v, nil
	}
	now := in.Now.In(channelLocation(ch))
	v.nextMonth = time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, now.Location())
	if end, quiet := quietUntil(ch, now); quiet {
		v.res.HoldReason, v.res.HoldUntil = HoldQuietHours, end
		return v, nil
	}
	if ch.FrequencyCap > 0 {
		n, oldest, err := a.Store.PushesSince(ctx, f.ID, now.Add(-24*time.Hour))
		if err != nil {
			return nil, err
		}
		if n >= int64(ch.FrequencyCap) {
			v.res.HoldReason, v.res.HoldUntil = HoldFrequencyCap, oldest.Add(24*time.Hour)
			return v, nil
		}
	}
	month := models.Month(now)
	if ch.LineQuotaMonth == month {
		v.holdForBudget()
		return v, nil
	}
	// Only a channel with a budget reserves: a step of one without it
	// must not give back, when refused, messages that others reserved
	// (its budget may be set, or removed, mid-month).
	if ch.MonthlyBudget > 0 {
		v.res.BudgetMonth = month
	}
	return v, nil
}

// quietUntil reports whether now is within the channel's quiet hours and
// when they end. Quiet hours may span midnight ("22:00" to "08:00").
func quietUntil(ch *models.Channel, now time.Time) (time.Time, bool) {
	if ch.QuietStart == "" || ch.QuietEnd == "" {
		return time.Time{}, false
	}
	sh, sm, err1 := scenario.ParseClock(ch.QuietStart)
	eh, em, err2 := scenario.ParseClock(ch.QuietEnd)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	at := func(day time.Time, h, m int) time.Time {
		return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, now.Location())
	}
	start, end := at(now, sh, sm), at(now, eh, em)
	if !end.After(start) { // spans midnight
		if now.Before(end) {
			return end, true
		}
		if !now.Before(start) {
			return at(now.AddDate(0, 0, 1), eh, em), true
		}
		return time.Time{}, false
	}
	if !now.Before(start) && now.Before(end) {
		return end, true
	}
	return time.Time{}, false
}
