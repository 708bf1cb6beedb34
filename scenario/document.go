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
	NodeWait    = "wait"
	NodeMessage = "message"
	NodeExit    = "exit"
)

// Start condition types.
const (
	StartFollow = "follow"
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
}

// Start says which friends enter the scenario.
type Start struct {
	Type string `json:"type"`
	// Routes limits a follow start to friends who came by one of these add
	// routes; empty means every follow.
	Routes []string `json:"routes,omitempty"`
}

// Node is one step of the graph. Type says which of the kind-specific fields
// is used.
type Node struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Next    string       `json:"next,omitempty"`
	Wait    *Wait        `json:"wait,omitempty"`
	Message *MessageStep `json:"message,omitempty"`
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
	if dec.More() {
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
