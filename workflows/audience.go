package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/models"
)

// AudienceEnrollmentWorkflow enrolls the existing friends who are in a
// scenario's start audience: a bulk job that Temporal makes resumable
// after any crash, throttled, with its progress in a query.
const (
	AudienceEnrollmentWorkflow = "AudienceEnrollment"
	// QueryProgress returns the job's BulkProgress.
	QueryProgress = "progress"
)

// AudienceEnrollmentWorkflowID names the job of one published version.
func AudienceEnrollmentWorkflowID(channelID uint, scenarioKey string, version int) string {
	return fmt.Sprintf("audience-enrollment/%d/%s/v%d", channelID, scenarioKey, version)
}

// DefaultEnrollRate is friends checked a second when the scenario does not
// say: gentle on the database and on Temporal, which starts one workflow
// per member.
const DefaultEnrollRate = 20

// bulkPage is how many friends one activity checks.
const bulkPage = 100

// pagesPerRun bounds a run's history; the job continues as new after it.
const pagesPerRun = 200

// AudienceEnrollmentInput starts (or continues) the job.
type AudienceEnrollmentInput struct {
	ChannelID  uint
	ScenarioID uint
	Version    int
	// PerSecond is how many friends to check a second.
	PerSecond int
	Progress  BulkProgress
}

// BulkProgress is how far the job has come. Friends are walked in ID
// order, so AfterFriendID is where it resumes.
type BulkProgress struct {
	AfterFriendID uint
	Checked       int
	Enrolled      int
	Done          bool
	// Waiting says why the job waits (the scenario is paused), if it does.
	Waiting    string `json:",omitempty"`
	StartedAt  time.Time
	FinishedAt *time.Time `json:",omitempty"`
}

// AudienceEnrollment walks the channel's friends and enrolls the audience's
// members.
func AudienceEnrollment(ctx workflow.Context, in AudienceEnrollmentInput) (BulkProgress, error) {
	p := in.Progress
	if p.StartedAt.IsZero() {
		p.StartedAt = workflow.Now(ctx)
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (BulkProgress, error) { return p, nil }); err != nil {
		return p, err
	}
	if in.PerSecond <= 0 {
		in.PerSecond = DefaultEnrollRate
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	for pages := 0; pages < pagesPerRun; pages++ {
		var ids []uint
		err := workflow.ExecuteActivity(ctx, a.NextFriends, activities.NextFriendsInput{
			ChannelID: in.ChannelID, AfterID: p.AfterFriendID, Limit: bulkPage}).Get(ctx, &ids)
		if err != nil {
			return p, err
		}
		if len(ids) == 0 {
			now := workflow.Now(ctx)
			p.Done, p.FinishedAt = true, &now
			return p, nil
		}
		var res activities.EnrollBatchResult
		err = workflow.ExecuteActivity(ctx, a.EnrollAudienceBatch, activities.EnrollBatchInput{
			ScenarioID: in.ScenarioID, Version: in.Version, FriendIDs: ids}).Get(ctx, &res)
		if err != nil {
			return p, err
		}
		switch res.ScenarioStatus {
		case models.ScenarioEnded:
			now := workflow.Now(ctx)
			p.Done, p.FinishedAt, p.Waiting = true, &now, ""
			return p, nil
		case models.ScenarioPaused:
			// The same page is tried again when the scenario is resumed.
			p.Waiting = "scenario paused"
			if err := workflow.Sleep(ctx, time.Minute); err != nil {
				return p, err
			}
			continue
		}
		p.Waiting = ""
		p.AfterFriendID = ids[len(ids)-1]
		p.Checked += len(ids)
		p.Enrolled += res.Enrolled
		if err := workflow.Sleep(ctx, time.Duration(len(ids))*time.Second/time.Duration(in.PerSecond)); err != nil {
			return p, err
		}
	}
	in.Progress = p
	return p, workflow.NewContinueAsNewError(ctx, AudienceEnrollmentWorkflow, in)
}
