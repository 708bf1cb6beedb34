package scenario_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/scenario"
)

const welcomeYAML = `
# The welcome series.
name: Welcome series
timezone: Asia/Tokyo
start:
  type: follow
  routes: [store-qr, campaign]
entry: day1
nodes:
  - id: day1
    type: wait
    next: welcome
    wait:
      days: 1
      at: "10:00"
  - id: welcome
    type: message
    next: day3
    message:
      messages:
        - type: text
          text: "Welcome, {{displayName}}!"
        - type: sticker
          packageId: "446"
          stickerId: "1988"
  - id: day3
    type: wait
    next: coupon
    wait:
      days: 3
      at: 10:00
  - id: coupon
    type: message
    next: later
    message:
      messages:
        - {type: text, text: "Your coupon: SAVE10"}
  - id: later
    type: wait
    next: bye
    wait:
      after: 2h
      from: previous
  - id: bye
    type: exit
`

const welcomeJSON = `{
  "name": "Welcome series",
  "timezone": "Asia/Tokyo",
  "start": {"type": "follow", "routes": ["store-qr", "campaign"]},
  "entry": "day1",
  "nodes": [
    {"id": "day1", "type": "wait", "next": "welcome", "wait": {"days": 1, "at": "10:00"}},
    {"id": "welcome", "type": "message", "next": "day3", "message": {"messages": [
      {"type": "text", "text": "Welcome, {{displayName}}!"},
      {"type": "sticker", "packageId": "446", "stickerId": "1988"}
    ]}},
    {"id": "day3", "type": "wait", "next": "coupon", "wait": {"days": 3, "at": "10:00"}},
    {"id": "coupon", "type": "message", "next": "later", "message": {"messages": [
      {"text": "Your coupon: SAVE10", "type": "text"}
    ]}},
    {"id": "later", "type": "wait", "next": "bye", "wait": {"after": "2h", "from": "previous"}},
    {"id": "bye", "type": "exit"}
  ]
}`

// normalized re-encodes every message so that two documents that say the same
// thing compare equal whatever their key order and spacing.
func normalized(t *testing.T, d *scenario.Document) *scenario.Document {
	t.Helper()
	out := *d
	out.Nodes = make([]scenario.Node, len(d.Nodes))
	for i, n := range d.Nodes {
		out.Nodes[i] = n
		if n.Message == nil {
			continue
		}
		m := &scenario.MessageStep{}
		for _, raw := range n.Message.Messages {
			var v any
			require.NoError(t, json.Unmarshal(raw, &v))
			b, err := json.Marshal(v)
			require.NoError(t, err)
			m.Messages = append(m.Messages, b)
		}
		out.Nodes[i].Message = m
	}
	return &out
}

func TestParseYAMLAndJSONAgree(t *testing.T) {
	fromYAML, err := scenario.Parse([]byte(welcomeYAML))
	require.NoError(t, err)
	fromJSON, err := scenario.Parse([]byte(welcomeJSON))
	require.NoError(t, err)

	require.Equal(t, normalized(t, fromJSON), normalized(t, fromYAML))

	// And the content is what was written, not merely the same both ways.
	d := fromYAML
	require.Equal(t, "Welcome series", d.Name)
	require.Equal(t, "Asia/Tokyo", d.TimeZone)
	require.Equal(t, scenario.Start{Type: scenario.StartFollow, Routes: []string{"store-qr", "campaign"}}, d.Start)
	require.Equal(t, "day1", d.EntryID())
	require.Len(t, d.Nodes, 6)
	require.Equal(t, &scenario.Wait{Days: days(1), At: "10:00"}, d.Nodes[0].Wait)
	// An unquoted 10:00 in YAML is the string "10:00", not a number.
	require.Equal(t, &scenario.Wait{Days: days(3), At: "10:00"}, d.Nodes[2].Wait)
	require.Equal(t, &scenario.Wait{After: "2h", From: scenario.FromPrevious}, d.Nodes[4].Wait)
	require.Len(t, d.Nodes[1].Message.Messages, 2)
	require.JSONEq(t, `{"type":"text","text":"Welcome, {{displayName}}!"}`, string(d.Nodes[1].Message.Messages[0]))
	require.JSONEq(t, `{"type":"sticker","packageId":"446","stickerId":"1988"}`, string(d.Nodes[1].Message.Messages[1]))
	require.Equal(t, scenario.NodeExit, d.Nodes[5].Type)

	require.NoError(t, fromYAML.Validate())
	require.NoError(t, fromJSON.Validate())
}

// TestParseDaysZero: "days: 0" is kept as a set zero, not dropped as absent.
func TestParseDaysZero(t *testing.T) {
	for _, src := range []string{
		"name: x\nstart: {type: follow}\nnodes:\n- {id: w, type: wait, wait: {days: 0, at: '10:00'}}\n",
		`{"name":"x","start":{"type":"follow"},"nodes":[{"id":"w","type":"wait","wait":{"days":0,"at":"10:00"}}]}`,
	} {
		d, err := scenario.Parse([]byte(src))
		require.NoError(t, err)
		require.NotNil(t, d.Nodes[0].Wait.Days)
		require.Equal(t, 0, *d.Nodes[0].Wait.Days)
	}
}

func requireInvalid(t *testing.T, err error) *stepcast.Error {
	t.Helper()
	require.Error(t, err)
	var e *stepcast.Error
	require.True(t, errors.As(err, &e), "error %v (%T) is not a *stepcast.Error", err, err)
	require.Equal(t, stepcast.EINVALID, e.Code)
	require.Equal(t, stepcast.EINVALID, stepcast.ErrorCode(err))
	return e
}

func TestParseRefusesUnknownFields(t *testing.T) {
	tests := map[string]struct {
		src  string
		name string
	}{
		"YAML top level":  {"name: x\nstart: {type: follow}\nnodes: []\ntimezon: Asia/Tokyo\n", "timezon"},
		"YAML in a node":  {"name: x\nnodes:\n- {id: a, type: message, nxt: b}\n", "nxt"},
		"YAML in a wait":  {"name: x\nnodes:\n- {id: a, type: wait, wait: {day: 1}}\n", "day"},
		"JSON top level":  {`{"name":"x","nodes":[],"entryy":"a"}`, "entryy"},
		"JSON in a start": {`{"name":"x","start":{"type":"follow","route":"qr"}}`, "route"},
		"JSON in a wait":  {`{"name":"x","nodes":[{"id":"a","type":"wait","wait":{"at":"10:00","form":"previous"}}]}`, "form"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			d, err := scenario.Parse([]byte(tt.src))
			require.Nil(t, d)
			e := requireInvalid(t, err)
			require.Contains(t, e.Message, tt.name, "the error names the unknown field")
		})
	}
}

func TestParseRefusesEmpty(t *testing.T) {
	for _, src := range []string{"", "   ", "\n\t\n"} {
		d, err := scenario.Parse([]byte(src))
		require.Nil(t, d)
		e := requireInvalid(t, err)
		require.Contains(t, e.Message, "empty")
	}
}

// TestParseNullDocumentIsNotAccepted: a YAML document that holds nothing
// (null, or only comments) must not make it through parse and validation.
func TestParseNullDocumentIsNotAccepted(t *testing.T) {
	for _, src := range []string{"~", "null", "# nothing yet\n"} {
		d, err := scenario.Parse([]byte(src))
		if err == nil {
			err = d.Validate()
		}
		requireInvalid(t, err)
	}
}

func TestParseRefusesBadSyntax(t *testing.T) {
	for name, src := range map[string]string{
		"bad YAML":            "name: [unclosed\n",
		"bad JSON":            `{"name": "x",}`,
		"JSON trailing data":  `{"name":"x"} {"name":"y"}`,
		"wrong type of field": `{"name": 3}`,
		"array document":      `- a` + "\n- b\n",
		"YAML days as text":   "name: x\nnodes:\n- {id: a, type: wait, wait: {days: three}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			d, err := scenario.Parse([]byte(src))
			require.Nil(t, d)
			requireInvalid(t, err)
		})
	}
}

func TestDocumentHelpers(t *testing.T) {
	d := &scenario.Document{Nodes: []scenario.Node{{ID: "a"}, {ID: "b"}}}
	require.Equal(t, "a", d.EntryID(), "the first node is the entry when none is named")
	d.Entry = "b"
	require.Equal(t, "b", d.EntryID())
	require.Equal(t, "", (&scenario.Document{}).EntryID())

	n, ok := d.Node("b")
	require.True(t, ok)
	require.Equal(t, "b", n.ID)
	n.Next = "a"
	require.Equal(t, "a", d.Nodes[1].Next, "Node returns a pointer into the document")
	_, ok = d.Node("zzz")
	require.False(t, ok)

	loc, err := d.Location()
	require.NoError(t, err)
	require.Equal(t, scenario.DefaultTimeZone, loc.String(), "no time zone means Asia/Tokyo")
	d.TimeZone = "Europe/Paris"
	loc, err = d.Location()
	require.NoError(t, err)
	require.Equal(t, "Europe/Paris", loc.String())
	d.TimeZone = "Mars/Olympus"
	_, err = d.Location()
	require.Error(t, err)
}
