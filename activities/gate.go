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
	// BudgetMonth is the month the step's messages were reserved from;
	// SendStep gives them back if LINE refuses the push.
	BudgetMonth string
}

// Gate is asked before each send. A block, an ended scenario or the exit
// audience end the enrollment; a paused scenario, quiet hours, the
// frequency cap and the monthly budget hold the step (nothing is dropped).
// When the step may go, its messages are reserved from the budget, so
// concurrent sends cannot overspend it.
func (a *Activities) Gate(ctx context.Context, in GateInput) (GateResult, error) {
	res, err := a.gate(ctx, in)
	if err == nil && res.HoldReason != "" {
		err = a.Store.RecordStepEvent(ctx, &models.StepEvent{ChannelID: in.ChannelID, ScenarioID: in.ScenarioID,
			NodeID: in.NodeID, FriendID: in.FriendID, Kind: models.StepHeld, Outcome: res.HoldReason, At: in.Now})
	}
	return res, err
}

func (a *Activities) gate(ctx context.Context, in GateInput) (GateResult, error) {
	sc, err := a.Store.Scenario(ctx, in.ScenarioID)
	if err != nil {
		return GateResult{}, err
	}
	f, err := a.Store.FriendByID(ctx, in.FriendID)
	if err != nil {
		return GateResult{}, err
	}
	res := GateResult{ScenarioStatus: sc.Status, Blocked: f.Status == models.FriendBlocked}
	if res.Blocked || sc.Status == models.ScenarioEnded {
		return res, nil
	}
	if in.ExitAudience != "" {
		if res.InExitAudience, err = a.InAudience(ctx, in.ChannelID, in.ExitAudience, f, in.Now, 0); err != nil || res.InExitAudience {
			return res, err
		}
	}
	if sc.Status == models.ScenarioPaused {
		res.HoldReason = HoldPaused
		return res, nil
	}
	ch, err := a.Store.Channel(ctx, in.ChannelID)
	if err != nil {
		return res, err
	}
	loc, err := time.LoadLocation(ch.TimeZone)
	if err != nil {
		loc, _ = time.LoadLocation(scenario.DefaultTimeZone)
	}
	now := in.Now.In(loc)
	if end, quiet := quietUntil(ch, now); quiet {
		res.HoldReason, res.HoldUntil = HoldQuietHours, end
		return res, nil
	}
	if ch.FrequencyCap > 0 {
		n, oldest, err := a.Store.PushesSince(ctx, f.ID, now.Add(-24*time.Hour))
		if err != nil {
			return res, err
		}
		if n >= int64(ch.FrequencyCap) {
			res.HoldReason, res.HoldUntil = HoldFrequencyCap, oldest.Add(24*time.Hour)
			return res, nil
		}
	}
	month := models.Month(now)
	nextMonth := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, loc)
	if ch.LineQuotaMonth == month {
		res.HoldReason, res.HoldUntil = HoldBudget, nextMonth
		return res, nil
	}
	ok, err := a.Store.ReserveBudget(ctx, ch, month, int64(in.Messages))
	if err != nil {
		return res, err
	}
	if !ok {
		res.HoldReason, res.HoldUntil = HoldBudget, nextMonth
		return res, nil
	}
	res.BudgetMonth = month
	return res, nil
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
