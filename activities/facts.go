package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// LoadFactsInput says whose facts, and how much of them, a condition needs.
type LoadFactsInput struct {
	ChannelID uint
	FriendID  uint
	scenario.Needs
	// Now is the workflow's time: audience windows are judged at it, as
	// the branch's own conditions are.
	Now time.Time
}

// LoadFacts reads what conditions are evaluated on, as the database has it
// now; the workflow evaluates the condition on the result, so the decision
// is in its history and replays the same.
func (a *Activities) LoadFacts(ctx context.Context, in LoadFactsInput) (scenario.Facts, error) {
	f, err := a.Store.FriendByID(ctx, in.FriendID)
	if err != nil {
		return scenario.Facts{}, err
	}
	return a.facts(ctx, in.ChannelID, f, in.Needs, in.Now, 0)
}

func (a *Activities) facts(ctx context.Context, channelID uint, f *models.Friend, needs scenario.Needs, now time.Time, depth int) (scenario.Facts, error) {
	facts := scenario.Facts{Attributes: f.AttributeMap(), Route: f.AddRoute}
	var err error
	if facts.Tags, err = a.Store.FriendTags(ctx, f.ID); err != nil {
		return facts, err
	}
	if !needs.EventsSince.IsZero() {
		evs, err := a.Store.FriendEvents(ctx, f.ID, needs.EventsSince)
		if err != nil {
			return facts, err
		}
		for _, ev := range evs {
			facts.Events = append(facts.Events, ToEvent(&ev))
		}
	}
	if len(needs.Audiences) > 0 {
		facts.Audiences = map[string]bool{}
		for _, key := range needs.Audiences {
			in, err := a.InAudience(ctx, channelID, key, f, now, depth)
			if err != nil {
				return facts, err
			}
			facts.Audiences[key] = in
		}
	}
	return facts, nil
}

// ToEvent converts an event row to what conditions see.
func ToEvent(ev *models.FriendEvent) scenario.Event {
	out := scenario.Event{Type: ev.Type, Name: ev.Name, ScenarioKey: ev.ScenarioKey, Node: ev.NodeID, At: ev.At}
	if ev.Props != "" && ev.Props != "{}" {
		_ = json.Unmarshal([]byte(ev.Props), &out.Props)
	}
	return out
}

// InAudience evaluates audience membership live: an uploaded audience
// holds its listed user IDs; any other is its rule evaluated on the
// friend's facts at now (the current time when zero).
func (a *Activities) InAudience(ctx context.Context, channelID uint, key string, f *models.Friend, now time.Time, depth int) (bool, error) {
	aud, err := a.Store.Audience(ctx, channelID, key)
	if err != nil {
		return false, err
	}
	if aud.Kind == models.AudienceUploaded {
		return a.Store.IsAudienceMember(ctx, aud.ID, f.UserID)
	}
	if depth > 0 {
		return false, stepcast.Errorf(stepcast.EINVALID, "audience %q refers to another audience", key)
	}
	var rule scenario.Condition
	if err := json.Unmarshal([]byte(aud.Rule), &rule); err != nil {
		return false, fmt.Errorf("audience %q rule: %w", key, err)
	}
	if now.IsZero() {
		now = time.Now().UTC()
	}
	var needs scenario.Needs
	rule.Needs(&needs, now, f.FirstFollowedAt)
	facts, err := a.facts(ctx, channelID, f, needs, now, depth+1)
	if err != nil {
		return false, err
	}
	return rule.Eval(&facts, now, f.FirstFollowedAt, ""), nil
}

// ApplyTagsInput adds and removes a friend's tags.
type ApplyTagsInput struct {
	FriendID uint
	Add      []string
	Remove   []string
}

// ApplyTags runs a tag node.
func (a *Activities) ApplyTags(ctx context.Context, in ApplyTagsInput) error {
	if err := a.Store.AddTags(ctx, in.FriendID, in.Add); err != nil {
		return err
	}
	return a.Store.RemoveTags(ctx, in.FriendID, in.Remove)
}

// RecordVisitInput is the path a node took.
type RecordVisitInput struct {
	ChannelID  uint
	ScenarioID uint
	FriendID   uint
	NodeID     string
	Outcome    string
	At         time.Time
}

// RecordVisit stores which path a branch, split or wait_event node took,
// for the scenario's statistics.
func (a *Activities) RecordVisit(ctx context.Context, in RecordVisitInput) error {
	return a.Store.RecordStepEvent(ctx, &models.StepEvent{ChannelID: in.ChannelID, ScenarioID: in.ScenarioID,
		NodeID: in.NodeID, FriendID: in.FriendID, Kind: models.StepVisit, Outcome: in.Outcome, At: in.At})
}
