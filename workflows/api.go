// Package workflows interprets a scenario for one friend: the durable
// Enrollment workflow. This file is its contract with the rest of Stepcast;
// the API server and the tests use these names and never spell the strings.
package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/stepcast/stepcast/scenario"
)

// DefaultTaskQueue is the task queue of the worker unless configured.
const DefaultTaskQueue = "stepcast"

// Names of the workflow, its signal and its query.
const (
	EnrollmentWorkflow = "Enrollment"
	// SignalFriendEvent carries a FriendEvent: a block, a click, a purchase.
	SignalFriendEvent = "friend-event"
	// SignalControl carries a Control: the scenario was paused, resumed or
	// ended.
	SignalControl = "control"
	// QueryState returns the State of the enrollment.
	QueryState = "state"
)

// Custom search attributes; registered by `stepcast migrate` and dev mode.
var (
	AttrChannel  = temporal.NewSearchAttributeKeyKeyword("StepcastChannel")
	AttrScenario = temporal.NewSearchAttributeKeyKeyword("StepcastScenario")
	AttrFriend   = temporal.NewSearchAttributeKeyKeyword("StepcastFriend")
	AttrNode     = temporal.NewSearchAttributeKeyKeyword("StepcastNode")
)

// SearchAttributes lists every custom search attribute, for registration.
var SearchAttributes = []temporal.SearchAttributeKeyKeyword{AttrChannel, AttrScenario, AttrFriend, AttrNode}

// StartSearchAttributes are the search attributes an enrollment starts
// with: channel, scenario and friend, and, when the scenario begins with a
// wait, StepcastNode set to that wait. The Web UI finds the friend there as
// soon as Temporal accepted the start, even while a burst keeps the worker
// minutes behind, and the run's first workflow task has nothing to upsert
// (markWaiting): a history event and a visibility write fewer per
// enrollment.
func StartSearchAttributes(channelID uint, scenarioKey, userID string, doc *scenario.Document) temporal.SearchAttributes {
	updates := []temporal.SearchAttributeUpdate{
		AttrChannel.ValueSet(fmt.Sprint(channelID)),
		AttrScenario.ValueSet(scenarioKey),
		AttrFriend.ValueSet(userID),
	}
	if n, ok := doc.Node(doc.EntryID()); ok && (n.Type == scenario.NodeWait || n.Type == scenario.NodeWaitEvent) {
		updates = append(updates, AttrNode.ValueSet(n.ID))
	}
	return temporal.NewSearchAttributes(updates...)
}

// EnrollmentWorkflowID is the ID of a friend's enrollment in a scenario. It
// reads as where to look: channel, scenario key, LINE user ID. A friend has
// at most one running enrollment per scenario because the ID is the same.
func EnrollmentWorkflowID(channelID uint, scenarioKey, userID string) string {
	return fmt.Sprintf("enrollment/%d/%s/%s", channelID, scenarioKey, userID)
}

// EnrollmentInput starts an enrollment. The scenario document travels in the
// input, so a run keeps the version it started with whatever is published
// later.
type EnrollmentInput struct {
	ChannelID   uint
	ScenarioID  uint
	ScenarioKey string
	Version     int
	FriendID    uint
	UserID      string
	Document    scenario.Document
	// EnrolledAt, when set and earlier than the start, is when the
	// scenario's days count from (a follow whose add route came later).
	EnrolledAt time.Time `json:",omitempty"`
	// Revision is the Enrollment code revision the run was started for
	// (Revision). A change to the commands a run issues applies to runs
	// started at or after its revision, and older runs keep the path they
	// started on. Unlike workflow.GetVersion, this costs no marker and no
	// search-attribute upsert in every run's history. 0 is a run started
	// before revisions were passed; it asks GetVersion, as it did then.
	Revision int `json:",omitempty"`
}

// Revision is the Enrollment code revision that new runs are started for.
// Raise it with each change that issues different commands, and branch on
// EnrollmentInput.Revision in the workflow.
const Revision = revisionNodeAtStart

// EventUnfollow is the friend event of a block.
const EventUnfollow = "unfollow"

// FriendEvent is something the friend did, signalled to their enrollments:
// a block (EventUnfollow) or any scenario.Event type.
type FriendEvent = scenario.Event

// Control actions.
const (
	ControlPause  = "pause"
	ControlResume = "resume"
	ControlEnd    = "end"
	// ControlRecheck says the channel's delivery settings changed (a
	// raised budget, say): held steps ask the gate again.
	ControlRecheck = "recheck"
)

// Control tells enrollments that their scenario's status changed.
type Control struct {
	Action string
}

// Enrollment statuses reported by the query.
const (
	StatusWaiting = "waiting"
	// StatusWaitingForEvent is a wait_event node: the event or its timeout.
	StatusWaitingForEvent = "waiting_for_event"
	// StatusHeld is a step that is due but held: the scenario is paused,
	// quiet hours, the frequency cap or the budget (HeldReason says which).
	StatusHeld = "held"
	// HeldRetrying is the HeldReason of a step whose push or database work
	// failed and waits to be tried again.
	HeldRetrying    = "retrying after an error"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusExited    = "exited"
)

// Exit reasons.
const (
	ExitBlocked       = "blocked"
	ExitExitNode      = "exit node"
	ExitEvent         = "exit event"
	ExitAudience      = "exit audience"
	ExitScenarioEnded = "scenario ended"
)

// State is what the state query returns: where the friend is and why.
type State struct {
	Status     string
	Node       string
	NextDueAt  *time.Time `json:",omitempty"`
	EnrolledAt time.Time
	Version    int
	StepsSent  int
	ExitReason string `json:",omitempty"`
	// HeldReason says why a due step waits: scenario paused, quiet hours,
	// frequency cap, budget.
	HeldReason string `json:",omitempty"`
	// Path lists the nodes visited, in order, with the branch taken.
	Path []Visit
}

// Visit is one node the enrollment went through.
type Visit struct {
	Node string
	At   time.Time
	// Outcome is the path taken (branch case, event or timeout, split
	// path) or the send outcome.
	Outcome string `json:",omitempty"`
}
