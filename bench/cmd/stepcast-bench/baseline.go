package main

// The references that Stepcast's figures are divided by: an empty workflow
// (what the server costs to start one) and a plain step workflow written
// the way the Temporal samples write one, a timer and an ordinary activity
// per step, pushing to the same fake LINE.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// EmptyWorkflow does nothing: its start is what the server's start costs.
func EmptyWorkflow(ctx workflow.Context) error { return nil }

// BaselineInput is one friend's plain step sequence: the first step is due
// at FirstDue, each later one Gap after the previous send.
type BaselineInput struct {
	UserID   string
	FirstDue time.Time
	Steps    int
	Gap      time.Duration
}

// BaselineWorkflow is a step sequence in the style of the Temporal samples:
// per step, workflow.Sleep and then an ordinary activity.
func BaselineWorkflow(ctx workflow.Context, in BaselineInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2},
	})
	for i := 0; i < in.Steps; i++ {
		wait := in.Gap
		if i == 0 {
			wait = in.FirstDue.Sub(workflow.Now(ctx))
		}
		if err := workflow.Sleep(ctx, wait); err != nil {
			return err
		}
		if err := workflow.ExecuteActivity(ctx, "Push", PushInput{UserID: in.UserID, Step: i + 1}).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// PushInput is one step's push.
type PushInput struct {
	UserID string
	Step   int
}

// baselinePusher is the baseline's activity: one HTTP POST to LINE's push
// endpoint (the fake), with a retry key that is the same on every attempt.
type baselinePusher struct {
	Endpoint string
	Token    string
	HTTP     *http.Client
}

// Push sends the step's text message.
func (p *baselinePusher) Push(ctx context.Context, in PushInput) error {
	info := activity.GetInfo(ctx)
	body, _ := json.Marshal(map[string]any{
		"to":       in.UserID,
		"messages": []any{map[string]any{"type": "text", "text": fmt.Sprintf("Step %d", in.Step)}},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Endpoint+"/v2/bot/message/push", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.Token)
	req.Header.Set("X-Line-Retry-Key", uuid.NewSHA1(uuid.NameSpaceURL,
		[]byte(info.WorkflowExecution.ID+"/"+info.WorkflowExecution.RunID+fmt.Sprintf("/%d", in.Step))).String())
	res, err := p.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK || res.StatusCode == http.StatusConflict {
		return nil
	}
	return fmt.Errorf("push answered %d: %s", res.StatusCode, msg)
}
