// Package scenario is the scenario language: the document a marketer writes,
// its validation, and the pure functions (due times) that both the workflow
// and previews run. Nothing here does I/O, so the workflow can call it and
// stay deterministic.
package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stepcast/stepcast"
)

// Node types.
const (
	NodeWait      = "wait"
	NodeMessage   = "message"
	NodeBranch    = "branch"
	NodeWaitEvent = "wait_event"
	NodeSplit     = "split"
	NodeTag       = "tag"
	NodeExit      = "exit"
)

// NodeTypes lists every node type.
var NodeTypes = []string{NodeWait, NodeMessage, NodeBranch, NodeWaitEvent, NodeSplit, NodeTag, NodeExit}

// Start condition types.
const (
	// StartFollow enrolls friends when they add the account.
	StartFollow = "follow"
	// StartAudience enrolls the members of an audience, existing friends
	// included, and friends who join it later when they follow.
	StartAudience = "audience"
	// StartManual enrolls only through the admin API.
	StartManual = "manual"
)

// Re-entry rules: may a friend whose enrollment ended enter again?
const (
	// ReentryNever: one enrollment per friend and scenario, ever.
	ReentryNever = "never"
	// ReentryAfterExit: a new start (a re-follow after a block, say) enrolls
	// the friend again once the previous enrollment has ended.
	ReentryAfterExit = "after_exit"
)

// DefaultTimeZone is the time zone of a scenario that names none.
const DefaultTimeZone = "Asia/Tokyo"

// Document is a scenario as a marketer writes it, in YAML or JSON.
type Document struct {
	Name     string `json:"name"`
	TimeZone string `json:"timezone,omitempty"`
	Start    Start  `json:"start"`
	// Entry is the first node; the first node of Nodes when empty.
	Entry string `json:"entry,omitempty"`
	Nodes []Node `json:"nodes"`
	// Period bounds when friends may be enrolled.
	Period *Period `json:"period,omitempty"`
	// Exit ends enrollments early; a block always does.
	Exit *ExitRules `json:"exit,omitempty"`
	// Conversion is the event that counts as a conversion of a step when
	// it comes after the step was sent, within Conversion.Within (default
	// DefaultConversionWindow).
	Conversion *EventCond `json:"conversion,omitempty"`
}

// DefaultConversionWindow is how long after a send an event counts as its
// conversion when the scenario does not say.
const DefaultConversionWindow = 7 * 24 * time.Hour

// Period is when enrollments may start; either end may be open.
type Period struct {
	From  *time.Time `json:"from,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// Contains reports whether t is within the period.
func (p *Period) Contains(t time.Time) bool {
	if p == nil {
		return true
	}
	return (p.From == nil || !t.Before(*p.From)) && (p.Until == nil || t.Before(*p.Until))
}

// ExitRules end an enrollment when a matching event arrives, or, checked
// before each message, when the friend is in the audience.
type ExitRules struct {
	Events   []EventCond `json:"events,omitempty"`
	Audience string      `json:"audience,omitempty"`
}

// Start says which friends enter the scenario.
type Start struct {
	Type string `json:"type"`
	// Routes limits a follow start to friends who came by one of these add
	// routes; empty means every follow.
	Routes []string `json:"routes,omitempty"`
	// Audience is the audience key of an audience start.
	Audience string `json:"audience,omitempty"`
	// Reentry is never (default) or after_exit.
	Reentry string `json:"reentry,omitempty"`
	// EnrollRate is how many existing friends an audience start checks a
	// second when it is published (default 20).
	EnrollRate int `json:"enrollRate,omitempty"`
}

// Node is one step of the graph. Type says which of the kind-specific fields
// is used.
type Node struct {
	ID        string       `json:"id"`
	Type      string       `json:"type"`
	Next      string       `json:"next,omitempty"`
	Wait      *Wait        `json:"wait,omitempty"`
	Message   *MessageStep `json:"message,omitempty"`
	Branch    *Branch      `json:"branch,omitempty"`
	WaitEvent *WaitEvent   `json:"waitEvent,omitempty"`
	Split     *Split       `json:"split,omitempty"`
	Tag       *TagStep     `json:"tag,omitempty"`
}

// Branch takes the first case whose condition holds, else Default.
type Branch struct {
	Cases   []Case `json:"cases"`
	Default string `json:"default,omitempty"`
}

// Case is one branch path.
type Case struct {
	When Condition `json:"when"`
	Next string    `json:"next"`
}

// WaitEvent waits for a matching event, at most until Timeout is due.
type WaitEvent struct {
	Event     EventCond `json:"event"`
	Timeout   Wait      `json:"timeout"`
	OnEvent   string    `json:"onEvent,omitempty"`
	OnTimeout string    `json:"onTimeout,omitempty"`
}

// Split sends each friend down one weighted path, the same one every time
// for the same friend.
type Split struct {
	Paths []SplitPath `json:"paths"`
}

// SplitPath is one path of a split.
type SplitPath struct {
	Weight int    `json:"weight"`
	Next   string `json:"next"`
}

// TagStep adds and removes tags.
type TagStep struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Successors lists the nodes a node can go to; empty IDs (end of the
// scenario) are left out.
func (n *Node) Successors() []string {
	var out []string
	add := func(id string) {
		if id != "" {
			out = append(out, id)
		}
	}
	switch {
	case n.Type == NodeBranch && n.Branch != nil:
		for _, c := range n.Branch.Cases {
			add(c.Next)
		}
		add(n.Branch.Default)
	case n.Type == NodeWaitEvent && n.WaitEvent != nil:
		add(n.WaitEvent.OnEvent)
		add(n.WaitEvent.OnTimeout)
	case n.Type == NodeSplit && n.Split != nil:
		for _, p := range n.Split.Paths {
			add(p.Next)
		}
	default:
		add(n.Next)
	}
	return out
}

// Wait holds the friend until a due time: either Days calendar days after the
// base at the clock time At, or a plain duration After the base.
type Wait struct {
	Days *int   `json:"days,omitempty"`
	At   string `json:"at,omitempty"`
	// After is a Go duration such as "90s", "2h" or "36h".
	After string `json:"after,omitempty"`
	// From is the base: "enrollment" (default) or "previous" (the time the
	// wait is reached, that is when the previous step finished).
	From string `json:"from,omitempty"`
}

// Wait bases.
const (
	FromEnrollment = "enrollment"
	FromPrevious   = "previous"
)

// MessageStep sends 1 to 5 LINE message objects in one push.
type MessageStep struct {
	Messages []json.RawMessage `json:"messages"`
}

// Parse reads a scenario document in JSON or YAML. Unknown fields are refused
// so that a typo does not silently change what a scenario does.
func Parse(data []byte) (*Document, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, stepcast.Errorf(stepcast.EINVALID, "scenario document is empty")
	}
	if data[0] != '{' {
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			return nil, stepcast.Errorf(stepcast.EINVALID, "scenario document is not valid YAML: %v", err)
		}
		v, err := jsonCompatible(v)
		if err != nil {
			return nil, stepcast.Errorf(stepcast.EINVALID, "scenario document: %v", err)
		}
		if data, err = json.Marshal(v); err != nil {
			return nil, stepcast.Errorf(stepcast.EINVALID, "scenario document: %v", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc Document
	if err := dec.Decode(&doc); err != nil {
		return nil, stepcast.Errorf(stepcast.EINVALID, "scenario document is not valid: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.InputOffset() != int64(len(data)) {
		return nil, stepcast.Errorf(stepcast.EINVALID, "scenario document has trailing data after the object")
	}
	return &doc, nil
}

// jsonCompatible turns YAML's map[any]any (from non-string keys) into
// map[string]any so the value can be re-encoded as JSON.
func jsonCompatible(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []any:
		for i, e := range t {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	default:
		return v, nil
	}
}

// EntryID returns the ID of the first node.
func (d *Document) EntryID() string {
	if d.Entry != "" {
		return d.Entry
	}
	if len(d.Nodes) > 0 {
		return d.Nodes[0].ID
	}
	return ""
}

// Node returns the node with the given ID.
func (d *Document) Node(id string) (*Node, bool) {
	for i := range d.Nodes {
		if d.Nodes[i].ID == id {
			return &d.Nodes[i], true
		}
	}
	return nil, false
}

// Location returns the scenario's time zone.
func (d *Document) Location() (*time.Location, error) {
	tz := d.TimeZone
	if tz == "" {
		tz = DefaultTimeZone
	}
	return time.LoadLocation(tz)
}
