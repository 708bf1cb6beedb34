package activities_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

// deliverFixture is the activities fixture with an active scenario and a
// budget of budget messages a month (0: none); deliver runs Deliver as the
// workflow does, as a local activity.
func deliverFixture(t *testing.T, f *fixture, budget int64) (*models.Scenario, func(in activities.DeliverInput) (activities.DeliverResult, error)) {
	t.Helper()
	ctx := context.Background()
	sc, _ := gateFixture(t, f)
	if budget > 0 {
		_, err := f.store.UpdateChannel(ctx, f.channel.ID, models.ChannelPatch{MonthlyBudget: &budget})
		require.NoError(t, err)
	}
	return sc, func(in activities.DeliverInput) (activities.DeliverResult, error) {
		t.Helper()
		in.ScenarioID = sc.ID
		v, err := f.env.ExecuteLocalActivity(f.acts.Deliver, in)
		if err != nil {
			return activities.DeliverResult{}, err
		}
		var res activities.DeliverResult
		require.NoError(t, v.Get(&res))
		return res, nil
	}
}

func (f *fixture) step(nodeID, stepKey string, now time.Time, msgs ...string) activities.DeliverInput {
	in := f.input(nodeID, stepKey, msgs...)
	in.Now = now
	return activities.DeliverInput{Step: in.Step}
}

func (f *fixture) usage(t *testing.T, month string) int64 {
	t.Helper()
	used, err := f.store.Usage(context.Background(), f.channel.ID, month)
	require.NoError(t, err)
	return used
}

// TestDeliverGatesThenSends: a step that may go is written, reserved and
// pushed in one activity; one that is held or must end writes no delivery
// row and reserves nothing.
func TestDeliverGatesThenSends(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sc, deliver := deliverFixture(t, f, 3)
	now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC) // 10:00 JST

	res, err := deliver(f.step("m1", "m1#1", now, hello, hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendSent, res.Outcome)
	require.Empty(t, res.HoldReason)
	d := f.delivery(t, activities.RetryKey(testWorkflowID, testRunID, "m1#1"))
	require.Equal(t, models.DeliverySent, d.Status)
	require.Equal(t, "2026-01", d.BudgetMonth)
	require.Equal(t, int64(2), f.usage(t, "2026-01"))

	// No room for 2 more of 3: held until February in Tokyo, nothing
	// written, nothing pushed.
	res, err = deliver(f.step("m2", "m2#2", now, hello, hello))
	require.NoError(t, err)
	require.Equal(t, activities.HoldBudget, res.HoldReason)
	require.True(t, res.HoldUntil.Equal(jst(2026, 2, 1, 0, 0)), "held until %s", res.HoldUntil.In(tokyo))
	require.Empty(t, res.Outcome)
	require.Equal(t, int64(2), f.usage(t, "2026-01"))
	var n int64
	require.NoError(t, f.store.DB.Model(&models.Delivery{}).Count(&n).Error)
	require.Equal(t, int64(1), n, "a held step has no delivery row")

	// Paused: held; the held step is counted for the statistics.
	_, err = f.store.SetScenarioStatus(ctx, sc.ID, models.ScenarioPaused)
	require.NoError(t, err)
	res, err = deliver(f.step("m3", "m3#3", now, hello))
	require.NoError(t, err)
	require.Equal(t, activities.HoldPaused, res.HoldReason)
	var held int64
	require.NoError(t, f.store.DB.Model(&models.StepEvent{}).Where("kind = ?", models.StepHeld).Count(&held).Error)
	require.Equal(t, int64(2), held)

	// Blocked: the enrollment ends, nothing is written.
	_, _, err = f.store.ApplyUnfollow(ctx, f.channel.ID, f.friend.UserID, now)
	require.NoError(t, err)
	res, err = deliver(f.step("m4", "m4#4", now, hello))
	require.NoError(t, err)
	require.True(t, res.Blocked)
	require.Empty(t, res.Outcome)
	require.Len(t, f.line.Pushes(), 1)
	require.NoError(t, f.store.DB.Model(&models.Delivery{}).Count(&n).Error)
	require.Equal(t, int64(1), n)
}

// TestDeliverTriesABegunStepAgainWithoutGateOrReservation: a step whose push
// failed is tried again with the same retry key; the second try is neither
// judged again (the scenario was paused meanwhile) nor reserved twice.
func TestDeliverTriesABegunStepAgainWithoutGateOrReservation(t *testing.T) {
	f := newFixture(t)
	sc, deliver := deliverFixture(t, f, 10)
	now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC)
	f.line.push = func(string) (string, error) {
		return "", &activities.LineError{Status: http.StatusInternalServerError, Message: "internal error"}
	}
	_, err := deliver(f.step("m1", "m1#1", now, hello, hello))
	require.Error(t, err, "a 500 is an error, for the workflow to try again")
	require.Equal(t, int64(2), f.usage(t, "2026-01"))

	_, err = f.store.SetScenarioStatus(context.Background(), sc.ID, models.ScenarioPaused)
	require.NoError(t, err)
	f.line.push = nil
	res, err := deliver(f.step("m1", "m1#1", now.Add(time.Second), hello, hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendSent, res.Outcome, "a begun step is finished, not held")
	require.Equal(t, int64(2), f.usage(t, "2026-01"), "reserved once")
	pushes := f.line.Pushes()
	require.Len(t, pushes, 2)
	require.Equal(t, pushes[0].RetryKey, pushes[1].RetryKey)
	d := f.delivery(t, pushes[0].RetryKey)
	require.Equal(t, models.DeliverySent, d.Status)
	require.Equal(t, 2, d.Attempts)
}

// TestDeliverBegunStepWhateverTheVerdict: a step begun before (its push
// failed) is tried again with the same key, unreserved and with no verdict
// for the workflow, whatever now ends or holds a new step (which it does:
// the check after each case). A blocked friend's begun step is skipped,
// not pushed.
func TestDeliverBegunStepWhateverTheVerdict(t *testing.T) {
	now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC) // 10:00 JST
	tests := []struct {
		name    string
		change  func(t *testing.T, f *fixture, sc *models.Scenario)
		exit    string // the exit audience
		verdict activities.GateResult
	}{
		{"ended", func(t *testing.T, f *fixture, sc *models.Scenario) {
			_, err := f.store.SetScenarioStatus(context.Background(), sc.ID, models.ScenarioEnded)
			require.NoError(t, err)
		}, "", activities.GateResult{ScenarioStatus: models.ScenarioEnded}},
		{"blocked", func(t *testing.T, f *fixture, _ *models.Scenario) {
			_, _, err := f.store.ApplyUnfollow(context.Background(), f.channel.ID, f.friend.UserID, now)
			require.NoError(t, err)
		}, "", activities.GateResult{ScenarioStatus: models.ScenarioActive, Blocked: true}},
		{"in the exit audience", func(t *testing.T, f *fixture, _ *models.Scenario) {
			require.NoError(t, f.store.AddTags(context.Background(), f.friend.ID, []string{"bought"}))
		}, "buyers", activities.GateResult{ScenarioStatus: models.ScenarioActive, InExitAudience: true}},
		{"quiet hours", func(t *testing.T, f *fixture, _ *models.Scenario) {
			start, end := "09:00", "11:00"
			_, err := f.store.UpdateChannel(context.Background(), f.channel.ID, models.ChannelPatch{QuietStart: &start, QuietEnd: &end})
			require.NoError(t, err)
		}, "", activities.GateResult{ScenarioStatus: models.ScenarioActive, HoldReason: activities.HoldQuietHours, HoldUntil: jst(2026, 1, 31, 11, 0)}},
		{"LINE's monthly limit", func(t *testing.T, f *fixture, _ *models.Scenario) {
			require.NoError(t, f.store.MarkLineQuotaReached(context.Background(), f.channel.ID, "2026-01"))
		}, "", activities.GateResult{ScenarioStatus: models.ScenarioActive, HoldReason: activities.HoldBudget, HoldUntil: jst(2026, 2, 1, 0, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			sc, deliver := deliverFixture(t, f, 10)
			a := &models.Audience{ChannelID: f.channel.ID, Key: "buyers", Name: "Buyers", Kind: models.AudienceRule, Rule: `{"tag":"bought"}`}
			require.NoError(t, f.store.CreateAudience(context.Background(), a))
			step := func(key string, at time.Time) activities.DeliverInput {
				in := f.step("m", key, at, hello)
				in.ExitAudience = tt.exit
				return in
			}
			f.line.push = func(string) (string, error) {
				return "", &activities.LineError{Status: http.StatusInternalServerError, Message: "internal error"}
			}
			_, err := deliver(step("m#1", now))
			require.Error(t, err)
			require.Equal(t, int64(1), f.usage(t, "2026-01"))

			tt.change(t, f, sc)
			f.line.push = nil
			res, err := deliver(step("m#1", now.Add(time.Minute)))
			require.NoError(t, err)
			require.Equal(t, activities.GateResult{}, res.GateResult, "the workflow sees no verdict for a begun step")
			key := activities.RetryKey(testWorkflowID, testRunID, "m#1")
			d := f.delivery(t, key)
			require.Equal(t, 2, d.Attempts)
			pushes := f.line.Pushes()
			if tt.name == "blocked" {
				require.Equal(t, metrics.SendSkipped, res.Outcome)
				require.Len(t, pushes, 1, "no push to a friend who blocked the account")
				require.Equal(t, models.DeliverySkipped, d.Status)
				require.Zero(t, f.usage(t, "2026-01"), "the skipped step's reservation is given back")
			} else {
				require.Equal(t, metrics.SendSent, res.Outcome)
				require.Len(t, pushes, 2)
				require.Equal(t, key, pushes[1].RetryKey)
				require.Equal(t, models.DeliverySent, d.Status)
				require.Equal(t, int64(1), f.usage(t, "2026-01"), "reserved once")
			}

			// A new step is judged: ended or held, not written, not pushed.
			res, err = deliver(step("m#2", now.Add(time.Minute)))
			require.NoError(t, err)
			require.True(t, res.HoldUntil.Equal(tt.verdict.HoldUntil), "held until %s", res.HoldUntil.In(tokyo))
			res.HoldUntil, tt.verdict.HoldUntil = time.Time{}, time.Time{}
			require.Equal(t, tt.verdict, res.GateResult)
			require.Empty(t, res.Outcome)
			require.Len(t, f.line.Pushes(), len(pushes))
			var n int64
			require.NoError(t, f.store.DB.Model(&models.Delivery{}).Count(&n).Error)
			require.Equal(t, int64(1), n)
		})
	}
}

// TestDeliverSentStepIsNotPushedAgain: a step already sent, delivered again
// (its local activity cut off after the push), is not pushed again, even
// when its own push now holds new steps for the frequency cap.
func TestDeliverSentStepIsNotPushedAgain(t *testing.T) {
	for _, capped := range []bool{false, true} {
		t.Run(fmt.Sprintf("capped=%v", capped), func(t *testing.T) {
			f := newFixtureOn(t, testenv.Postgres(t))
			_, deliver := deliverFixture(t, f, 10)
			now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC)
			res, err := deliver(f.step("m", "m#1", now, hello))
			require.NoError(t, err)
			require.Equal(t, metrics.SendSent, res.Outcome)
			if capped {
				one := 1
				_, err := f.store.UpdateChannel(context.Background(), f.channel.ID, models.ChannelPatch{FrequencyCap: &one})
				require.NoError(t, err)
				res, err := deliver(f.step("m", "m#2", now.Add(time.Minute), hello))
				require.NoError(t, err)
				require.Equal(t, activities.HoldFrequencyCap, res.HoldReason, "the cap holds a new step")
			}

			res, err = deliver(f.step("m", "m#1", now.Add(time.Minute), hello))
			require.NoError(t, err)
			require.Equal(t, metrics.SendDuplicate, res.Outcome)
			require.Empty(t, res.HoldReason)
			require.Len(t, f.line.Pushes(), 1)
			require.Equal(t, int64(1), f.usage(t, "2026-01"), "reserved once")
		})
	}
}

// TestDeliverMonthlyLimitBeginsTheStepAgain: after LINE's monthly limit the
// row is held with its budget given back; next month the gate lets the
// step go and it is reserved and pushed again, with the same key.
func TestDeliverMonthlyLimitBeginsTheStepAgain(t *testing.T) {
	f := newFixture(t)
	_, deliver := deliverFixture(t, f, 10)
	now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC)
	f.line.push = func(string) (string, error) {
		return "", &activities.LineError{Status: http.StatusTooManyRequests, Message: "You have reached your monthly limit."}
	}
	res, err := deliver(f.step("m1", "m1#1", now, hello, hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendHeld, res.Outcome)
	require.Zero(t, f.usage(t, "2026-01"))

	res, err = deliver(f.step("m1", "m1#1", now.Add(time.Hour), hello, hello))
	require.NoError(t, err)
	require.Equal(t, activities.HoldBudget, res.HoldReason, "the channel is out of LINE's quota this month")
	require.Len(t, f.line.Pushes(), 1)

	f.line.push = nil
	feb := jst(2026, 2, 1, 0, 0)
	res, err = deliver(f.step("m1", "m1#1", feb, hello, hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendSent, res.Outcome)
	require.Equal(t, int64(2), f.usage(t, "2026-02"))
	pushes := f.line.Pushes()
	require.Len(t, pushes, 2)
	require.Equal(t, pushes[0].RetryKey, pushes[1].RetryKey)
	d := f.delivery(t, pushes[0].RetryKey)
	require.Equal(t, "2026-02", d.BudgetMonth)
}

// TestDeliverConcurrentBudget: many steps due at once on PostgreSQL take
// exactly the budget, whatever their interleaving.
func TestDeliverConcurrentBudget(t *testing.T) {
	f := newFixtureOn(t, testenv.Postgres(t))
	const budget, steps = 7, 20
	_, deliver := deliverFixture(t, f, budget)
	now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC)
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		sent, held int
		errs       []error
	)
	for i := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "m#" + string(rune('a'+i))
			res, err := deliver(f.step("m", key, now, hello))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case res.Outcome == metrics.SendSent:
				sent++
			case res.HoldReason == activities.HoldBudget:
				held++
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Equal(t, budget, sent)
	require.Equal(t, steps-budget, held)
	require.Equal(t, int64(budget), f.usage(t, "2026-01"))
	require.Len(t, f.line.Pushes(), budget)
}

// TestDeliverWithoutBudgetGivesNothingBack: a channel without a budget
// reserves nothing, so a refused step of it must not take back messages
// that were reserved while it had one, earlier in the month.
func TestDeliverWithoutBudgetGivesNothingBack(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, deliver := deliverFixture(t, f, 10)
	now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC)
	res, err := deliver(f.step("m1", "m1#1", now, hello, hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendSent, res.Outcome)
	require.Equal(t, int64(2), f.usage(t, "2026-01"))

	none := int64(0)
	_, err = f.store.UpdateChannel(ctx, f.channel.ID, models.ChannelPatch{MonthlyBudget: &none})
	require.NoError(t, err)
	f.line.push = func(string) (string, error) {
		return "", &activities.LineError{Status: http.StatusBadRequest, Message: "The request body has 1 error(s)"}
	}
	res, err = deliver(f.step("m2", "m2#2", now, hello, hello))
	require.NoError(t, err)
	require.Equal(t, metrics.SendFailed, res.Outcome)
	require.Empty(t, f.delivery(t, activities.RetryKey(testWorkflowID, testRunID, "m2#2")).BudgetMonth)
	require.Equal(t, int64(2), f.usage(t, "2026-01"), "the first step's reservation stays")
}
