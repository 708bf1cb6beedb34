// Package models holds the database rows and the store that reads and writes
// them. Rows are not API types and not workflow inputs: apiserver and
// workflows convert at their boundaries.
package models

import "time"

// Channel is one LINE Messaging API channel (an Official Account).
type Channel struct {
	ID            uint   `gorm:"primaryKey"`
	Name          string `gorm:"not null"`
	LineChannelID string `gorm:"uniqueIndex;not null"`
	Secret        string `gorm:"not null"`
	AccessToken   string `gorm:"not null"`
	TimeZone      string `gorm:"not null"`
	// MonthlyBudget is the number of messages the channel may send a month;
	// 0 means no budget of Stepcast's own.
	MonthlyBudget int64
	// QuietStart and QuietEnd ("22:00", "08:00") are the quiet hours in the
	// channel's time zone; sends due then wait until they end. Empty: none.
	QuietStart string
	QuietEnd   string
	// FrequencyCap is the most step messages (pushes) a friend gets in a
	// rolling day; 0 means no cap.
	FrequencyCap int
	// RateLimit is the most pushes a second across all workers; 0 means
	// LINE's push limit.
	RateLimit int
	// AddFriendURL is the account's add-friend link (https://line.me/R/ti/p/@id),
	// where tracked add-route links send people.
	AddFriendURL string
	// EventsKeyHash is the SHA-256 of the key that the shop's site sends
	// with web events; the key itself is shown once, when made.
	EventsKeyHash string
	// LineQuotaMonth is the month ("2026-11") in which LINE answered that
	// the channel's monthly limit was reached: sends hold until the next
	// month, or until an operator clears it.
	LineQuotaMonth string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Friend statuses.
const (
	FriendFollowing = "following"
	FriendBlocked   = "blocked"
)

// Friend is a LINE user on a channel.
type Friend struct {
	ID          uint   `gorm:"primaryKey"`
	ChannelID   uint   `gorm:"not null;uniqueIndex:idx_friend_channel_user"`
	UserID      string `gorm:"not null;uniqueIndex:idx_friend_channel_user"`
	Status      string `gorm:"not null;index"`
	DisplayName string
	AddRoute    string
	// AddRouteAt is when the route was set: a route that arrives shortly
	// after the follow still counts for the start condition.
	AddRouteAt *time.Time
	// Attributes are the business's own data about the friend (gender,
	// age, region, os, custom keys), as a JSON object of strings.
	Attributes      string `gorm:"type:text;not null;default:'{}'"`
	FirstFollowedAt time.Time
	LastFollowedAt  time.Time
	BlockedAt       *time.Time
	// StatusAt is the LINE timestamp of the event that set Status. Events
	// older than it do not change the status, so a follow and an unfollow
	// applied out of order still leave the friend as LINE last saw them.
	StatusAt  time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Scenario statuses.
const (
	ScenarioDraft  = "draft"
	ScenarioActive = "active"
	ScenarioPaused = "paused"
	ScenarioEnded  = "ended"
)

// Scenario is a marketer's scenario: an editable draft plus the number of
// the latest published (immutable) version.
type Scenario struct {
	ID        uint   `gorm:"primaryKey"`
	ChannelID uint   `gorm:"not null;uniqueIndex:idx_scenario_channel_key"`
	Key       string `gorm:"not null;uniqueIndex:idx_scenario_channel_key"`
	Name      string `gorm:"not null"`
	Status    string `gorm:"not null;index"`
	// Draft is the scenario document (JSON) being edited.
	Draft string `gorm:"type:text;not null"`
	// Version is the latest published version; 0 before the first publish.
	Version   int `gorm:"not null"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ScenarioVersion is a published scenario document. It never changes:
// enrollments run the version they started with.
type ScenarioVersion struct {
	ID          uint   `gorm:"primaryKey"`
	ScenarioID  uint   `gorm:"not null;uniqueIndex:idx_version_scenario_version"`
	Version     int    `gorm:"not null;uniqueIndex:idx_version_scenario_version"`
	Document    string `gorm:"type:text;not null"`
	PublishedAt time.Time
}

// Enrollment statuses.
const (
	EnrollmentRunning   = "running"
	EnrollmentCompleted = "completed"
	EnrollmentExited    = "exited"
)

// Enrollment is one friend in one scenario version: one workflow run.
type Enrollment struct {
	ID              uint   `gorm:"primaryKey"`
	ChannelID       uint   `gorm:"not null;index"`
	ScenarioID      uint   `gorm:"not null;index"`
	ScenarioVersion int    `gorm:"not null"`
	FriendID        uint   `gorm:"not null;index"`
	WorkflowID      string `gorm:"not null;uniqueIndex:idx_enrollment_run"`
	RunID           string `gorm:"not null;uniqueIndex:idx_enrollment_run"`
	Status          string `gorm:"not null;index"`
	// ExitReason says why an enrollment ended early (blocked, exit node...).
	ExitReason string
	// FollowedAt is the time of the follow that started the enrollment
	// (LINE's timestamp); zero for one started otherwise. A follow applied
	// again finds it and does not enroll the friend a second time.
	FollowedAt time.Time
	StartedAt  time.Time
	EndedAt    *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Delivery statuses.
const (
	DeliverySending = "sending"
	DeliverySent    = "sent"
	DeliveryFailed  = "failed"
	DeliverySkipped = "skipped"
	// DeliveryHeld is a step LINE refused for the channel's monthly limit:
	// nothing was sent and nothing is reserved; it is begun again, with the
	// same retry key, when the gate lets it go.
	DeliveryHeld = "held"
)

// Delivery is one step's push to one friend. RetryKey is the X-Line-Retry-Key
// used on every attempt, so one step has one row however often it is tried.
type Delivery struct {
	ID           uint   `gorm:"primaryKey"`
	ChannelID    uint   `gorm:"not null;index"`
	ScenarioID   uint   `gorm:"not null;index"`
	FriendID     uint   `gorm:"not null;index"`
	WorkflowID   string `gorm:"not null;index"`
	RunID        string `gorm:"not null"`
	NodeID       string `gorm:"not null"`
	RetryKey     string `gorm:"not null;uniqueIndex"`
	Status       string `gorm:"not null;index"`
	MessageCount int    `gorm:"not null"`
	// BudgetMonth is the month the step's messages were reserved from
	// (empty: nothing reserved), so a refused push gives them back.
	BudgetMonth string
	Attempts    int `gorm:"not null"`
	Error       string
	// LineRequestID is LINE's x-line-request-id (or the accepted request's
	// id on a 409), the handle LINE support asks for.
	LineRequestID string
	SentAt        *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// WebhookEvent is a received LINE webhook event: the durable inbox. The
// webhook handler only stores events; the dispatcher applies them in order
// and sets ProcessedAt.
type WebhookEvent struct {
	ID             uint   `gorm:"primaryKey"`
	ChannelID      uint   `gorm:"not null;uniqueIndex:idx_webhook_event_dedup"`
	WebhookEventID string `gorm:"not null;uniqueIndex:idx_webhook_event_dedup"`
	Type           string `gorm:"not null"`
	UserID         string `gorm:"index"`
	Redelivery     bool
	// Timestamp is LINE's event time.
	Timestamp   time.Time
	Payload     string `gorm:"type:text;not null"`
	ReceivedAt  time.Time
	ProcessedAt *time.Time `gorm:"index"`
	Attempts    int
	LastError   string
}

// FriendTag is a tag (LINE's chat tag) on a friend.
type FriendTag struct {
	ID        uint   `gorm:"primaryKey"`
	FriendID  uint   `gorm:"not null;uniqueIndex:idx_friend_tag"`
	Tag       string `gorm:"not null;uniqueIndex:idx_friend_tag;index"`
	CreatedAt time.Time
}

// ChannelTag is a tag defined on a channel: the list a marketer picks
// from. Tagging a friend defines the tag too.
type ChannelTag struct {
	ChannelID uint   `gorm:"primaryKey"`
	Name      string `gorm:"primaryKey"`
	CreatedAt time.Time
}

// FriendEvent is something a friend did that scenarios can branch on: a
// click on a tracked link, a postback, a web event (page view, add to cart,
// purchase, custom). Props is a JSON object.
type FriendEvent struct {
	ID        uint   `gorm:"primaryKey"`
	ChannelID uint   `gorm:"not null;index;uniqueIndex:idx_friend_event_source"`
	FriendID  uint   `gorm:"not null;index:idx_friend_event_time"`
	Type      string `gorm:"not null"`
	// SourceKey names the event where it came from ("line:" and LINE's
	// webhookEventId, "api:" and the reporter's own ID), so that an event
	// applied or reported again is recorded and signalled once. Nil for
	// events that have none, such as clicks.
	SourceKey *string `gorm:"uniqueIndex:idx_friend_event_source"`
	// Name is the custom event's name, or the postback data.
	Name string
	// ScenarioKey and NodeID say which step a click or postback came from.
	ScenarioKey string
	NodeID      string
	Props       string    `gorm:"type:text;not null;default:'{}'"`
	At          time.Time `gorm:"not null;index:idx_friend_event_time"`
	CreatedAt   time.Time
}

// Audience kinds. Every kind but uploaded is a rule: click, impression
// (a delivered message; LINE gives bots no per-user opens), chat tag, add
// route and web traffic are conditions on the friend's events, tags and
// route, evaluated live.
const (
	AudienceUploaded   = "uploaded"
	AudienceClick      = "click"
	AudienceImpression = "impression"
	AudienceChatTag    = "chat_tag"
	AudienceRoute      = "route"
	AudienceWebTraffic = "web_traffic"
	AudienceRule       = "rule"
)

// Audience is a named set of friends evaluated live: the friends who match
// its rule (a scenario condition: tags, attributes, route, events within a
// window), or, for an uploaded audience, the listed user IDs.
type Audience struct {
	ID        uint   `gorm:"primaryKey"`
	ChannelID uint   `gorm:"not null;uniqueIndex:idx_audience_key"`
	Key       string `gorm:"not null;uniqueIndex:idx_audience_key"`
	Name      string `gorm:"not null"`
	Kind      string `gorm:"not null"`
	// Rule is a scenario condition as JSON; empty for uploaded audiences.
	Rule      string `gorm:"type:text"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AudienceMember is one user ID of an uploaded audience.
type AudienceMember struct {
	AudienceID uint   `gorm:"primaryKey"`
	UserID     string `gorm:"primaryKey"`
}

// ChannelUsage counts the messages a channel's steps used in a month (in
// the channel's time zone): reserved before each push, released if LINE
// refuses it.
type ChannelUsage struct {
	ChannelID uint   `gorm:"primaryKey"`
	Month     string `gorm:"primaryKey"`
	Used      int64  `gorm:"not null"`
}

// RateWindow counts pushes of a channel in one second, so the rate limit
// holds across workers.
type RateWindow struct {
	ChannelID uint  `gorm:"primaryKey"`
	Second    int64 `gorm:"primaryKey"`
	Count     int   `gorm:"not null"`
}

// TrackedLink is a URL that a scenario's message contains. Messages carry
// signed tokens that name a link and a friend, so the redirect can only
// send people to URLs that a scenario itself contains.
type TrackedLink struct {
	ID         uint   `gorm:"primaryKey"`
	ChannelID  uint   `gorm:"not null;uniqueIndex:idx_tracked_link"`
	ScenarioID uint   `gorm:"not null;uniqueIndex:idx_tracked_link"`
	NodeID     string `gorm:"not null;uniqueIndex:idx_tracked_link"`
	URL        string `gorm:"not null;uniqueIndex:idx_tracked_link"`
	CreatedAt  time.Time
}

// RouteVisit is one visit of a tracked friend-add link of an add route.
type RouteVisit struct {
	ID        uint   `gorm:"primaryKey"`
	ChannelID uint   `gorm:"not null;index:idx_route_visit"`
	Route     string `gorm:"not null;index:idx_route_visit"`
	OS        string
	At        time.Time `gorm:"not null"`
}

// KeywordRule tags friends whose chat message matches a keyword.
type KeywordRule struct {
	ID        uint   `gorm:"primaryKey"`
	ChannelID uint   `gorm:"not null;index"`
	Keyword   string `gorm:"not null"`
	// Exact matches the whole message; otherwise the keyword anywhere in
	// it. Both ignore case.
	Exact     bool
	Tag       string `gorm:"not null"`
	CreatedAt time.Time
}

// Lease lets one of several processes do a job (dispatch the webhook
// inbox) at a time; it expires unless renewed, so a dead holder hands it on.
type Lease struct {
	Name      string    `gorm:"primaryKey"`
	Holder    string    `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null"`
}

// Step event kinds, for statistics.
const (
	StepVisit = "visit" // a branch, split or wait_event node decided; Outcome is the path
	StepHeld  = "held"  // a due step was held; Outcome is the reason
)

// StepEvent is a fact about a node of a scenario for statistics that no
// other table holds: the path a branch took, a step held.
type StepEvent struct {
	ID         uint   `gorm:"primaryKey"`
	ChannelID  uint   `gorm:"not null"`
	ScenarioID uint   `gorm:"not null;index:idx_step_event_node"`
	NodeID     string `gorm:"not null;index:idx_step_event_node"`
	FriendID   uint   `gorm:"not null"`
	Kind       string `gorm:"not null"`
	Outcome    string
	At         time.Time `gorm:"not null"`
}

// All lists every model, in the order migrations create them.
func All() []any {
	return []any{&Channel{}, &Friend{}, &Scenario{}, &ScenarioVersion{}, &Enrollment{}, &Delivery{}, &WebhookEvent{},
		&FriendTag{}, &ChannelTag{}, &FriendEvent{}, &Audience{}, &AudienceMember{},
		&ChannelUsage{}, &RateWindow{}, &StepEvent{},
		&TrackedLink{}, &KeywordRule{}, &Lease{}, &RouteVisit{}}
}
