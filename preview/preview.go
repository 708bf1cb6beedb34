// Package preview shows what a scenario would send to a hypothetical
// friend, and when. It runs the real Enrollment workflow, the same code
// that runs for real friends, in Temporal's test environment in virtual
// time, with the activities answered from the hypothetical friend instead
// of the database and LINE. There is no second interpreter to drift from
// the first.
package preview

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// Friend is a hypothetical friend.
type Friend struct {
	UserID      string            `json:"userId,omitempty"`
	DisplayName string            `json:"displayName,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Route       string            `json:"route,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	// Audiences says which audiences the friend is in.
	Audiences map[string]bool `json:"audiences,omitempty"`
	// Events are what the friend does, each at an offset from the
	// enrollment ("after") or at a time ("at"). Type "unfollow" is a block.
	Events []Event `json:"events,omitempty"`
}

// Event is a hypothetical event.
type Event struct {
	Type  string            `json:"type"`
	Name  string            `json:"name,omitempty"`
	Node  string            `json:"node,omitempty"`
	Props map[string]string `json:"props,omitempty"`
	After string            `json:"after,omitempty"`
	At    *time.Time        `json:"at,omitempty"`
}

// Input is a preview request.
type Input struct {
	Document    scenario.Document
	ScenarioKey string
	Friend      Friend
	// Start is when the friend is enrolled; now when zero.
	Start time.Time
}

// Send is one push the scenario would make.
type Send struct {
	Node     string            `json:"node"`
	At       time.Time         `json:"at"`
	Messages []json.RawMessage `json:"messages"`
}

// Timeline is what would happen.
type Timeline struct {
	Sends []Send            `json:"sends"`
	Path  []workflows.Visit `json:"path"`
	// End is the enrollment's final state: completed or exited, and why.
	End workflows.State `json:"end"`
}

// Horizon bounds how far a preview runs in virtual time; a scenario still
// waiting then is shown as far as it got.
const Horizon = 2 * 366 * 24 * time.Hour

var a *activities.Activities

// Run previews the scenario for the friend.
func Run(in Input) (*Timeline, error) {
	if err := in.Document.Validate(); err != nil {
		return nil, err
	}
	if in.Start.IsZero() {
		in.Start = time.Now()
	}
	if in.Friend.UserID == "" {
		in.Friend.UserID = "Upreview"
	}
	if in.Friend.DisplayName == "" {
		in.Friend.DisplayName = "Preview friend"
	}
	events, err := in.Friend.events(in.Start, in.ScenarioKey)
	if err != nil {
		return nil, err
	}

	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	s.SetDisableRegistrationAliasing(true)
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(in.Start)
	env.SetTestTimeout(30 * time.Second)
	env.RegisterWorkflowWithOptions(workflows.Enrollment, workflow.RegisterOptions{Name: workflows.EnrollmentWorkflow})
	env.RegisterActivity(&activities.Activities{})

	f := &friend{Friend: in.Friend, events: events}
	tl := &Timeline{}
	env.OnActivity(a.Deliver, mock.Anything, mock.Anything).Return(
		func(_ context.Context, di activities.DeliverInput) (activities.DeliverResult, error) {
			res := activities.DeliverResult{GateResult: activities.GateResult{ScenarioStatus: models.ScenarioActive,
				InExitAudience: di.ExitAudience != "" && f.Audiences[di.ExitAudience]}}
			if res.InExitAudience {
				return res, nil
			}
			tl.Sends = append(tl.Sends, Send{Node: di.NodeID, At: env.Now(), Messages: activities.Personalize(di.Messages, f.DisplayName)})
			// As Deliver records for real friends: the impression.
			f.mu.Lock()
			f.events = append(f.events, scenario.Event{Type: scenario.EventDelivered, ScenarioKey: di.ScenarioKey, Node: di.NodeID, At: env.Now()})
			f.mu.Unlock()
			res.Outcome = metrics.SendSent
			return res, nil
		})
	env.OnActivity(a.LoadFacts, mock.Anything, mock.Anything).Return(
		func(_ context.Context, li activities.LoadFactsInput) (scenario.Facts, error) {
			return f.facts(env.Now(), li.EventsSince), nil
		})
	env.OnActivity(a.ApplyTags, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ti activities.ApplyTagsInput) error {
			f.applyTags(ti.Add, ti.Remove)
			return nil
		})
	env.OnActivity(a.FinishEnrollment, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.RecordVisit, mock.Anything, mock.Anything).Return(nil)

	for _, ev := range events {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalFriendEvent, ev) }, ev.At.Sub(in.Start))
	}
	// A scenario that waits past the horizon is cut there.
	env.RegisterDelayedCallback(func() {
		if q, err := env.QueryWorkflow(workflows.QueryState); err == nil {
			_ = q.Get(&tl.End)
		}
		env.CancelWorkflow()
	}, Horizon)

	env.ExecuteWorkflow(workflows.EnrollmentWorkflow, workflows.EnrollmentInput{
		ScenarioKey: in.ScenarioKey, Version: 0, UserID: f.UserID, Document: in.Document,
		Revision: workflows.Revision,
	})
	if !env.IsWorkflowCompleted() {
		return nil, stepcast.Errorf(stepcast.EINTERNAL, "preview did not finish")
	}
	if err := env.GetWorkflowError(); err != nil {
		if !temporal.IsCanceledError(err) || tl.End.Status == "" {
			return nil, fmt.Errorf("preview: %w", err)
		}
		tl.End.ExitReason = "still waiting after the preview horizon"
	} else if err := env.GetWorkflowResult(&tl.End); err != nil {
		return nil, err
	}
	tl.Path = tl.End.Path
	return tl, nil
}

// friend is the hypothetical friend while the preview runs.
type friend struct {
	Friend
	mu     sync.Mutex
	events []scenario.Event
}

func (f *Friend) events(start time.Time, scenarioKey string) ([]scenario.Event, error) {
	var out []scenario.Event
	for i, e := range f.Events {
		at := start
		switch {
		case e.At != nil && e.After != "":
			return nil, invalid(fmt.Sprintf("friend.events[%d]", i), "give after or at, not both")
		case e.At != nil:
			at = *e.At
		case e.After != "":
			d, err := time.ParseDuration(e.After)
			if err != nil || d < 0 {
				return nil, invalid(fmt.Sprintf("friend.events[%d].after", i), fmt.Sprintf("%q is not a duration such as 36h", e.After))
			}
			at = start.Add(d)
		}
		if at.Before(start) {
			return nil, invalid(fmt.Sprintf("friend.events[%d]", i), "is before the enrollment")
		}
		if e.Type != workflows.EventUnfollow && !slices.Contains(scenario.EventTypes, e.Type) {
			return nil, invalid(fmt.Sprintf("friend.events[%d].type", i), fmt.Sprintf("%q is not an event type", e.Type))
		}
		ev := scenario.Event{Type: e.Type, Name: e.Name, Node: e.Node, Props: e.Props, At: at}
		if e.Node != "" {
			ev.ScenarioKey = scenarioKey
		}
		out = append(out, ev)
	}
	slices.SortStableFunc(out, func(x, y scenario.Event) int { return x.At.Compare(y.At) })
	return out, nil
}

func invalid(path, msg string) error {
	return &stepcast.Error{Code: stepcast.EINVALID, Message: "preview friend is not valid", Problems: []stepcast.Problem{{Path: path, Message: msg}}}
}

func (f *friend) facts(now, since time.Time) scenario.Facts {
	f.mu.Lock()
	defer f.mu.Unlock()
	facts := scenario.Facts{Attributes: f.Attributes, Route: f.Route, Tags: slices.Clone(f.Tags), Audiences: f.Audiences}
	for _, ev := range f.events {
		if !ev.At.After(now) && !ev.At.Before(since) && ev.Type != workflows.EventUnfollow {
			facts.Events = append(facts.Events, ev)
		}
	}
	return facts
}

func (f *friend) applyTags(add, remove []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range add {
		if !slices.Contains(f.Tags, t) {
			f.Tags = append(f.Tags, t)
		}
	}
	f.Tags = slices.DeleteFunc(f.Tags, func(t string) bool { return slices.Contains(remove, t) })
}
