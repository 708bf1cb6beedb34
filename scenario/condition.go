package scenario

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Condition decides a branch, a start or an exit. Exactly one field is set.
// Conditions are evaluated when the workflow reaches them, on Facts loaded
// then (through an activity), so they see data changed after enrollment.
type Condition struct {
	All       []Condition    `json:"all,omitempty"`
	Any       []Condition    `json:"any,omitempty"`
	Not       *Condition     `json:"not,omitempty"`
	Attribute *AttributeCond `json:"attribute,omitempty"`
	// Route is true when the friend's add route is one of these.
	Route []string `json:"route,omitempty"`
	// Tag is true when the friend has this tag.
	Tag string `json:"tag,omitempty"`
	// Audience is true when the friend is in the audience with this key.
	Audience string `json:"audience,omitempty"`
	// Event is true when a matching event happened within the window.
	Event *EventCond `json:"event,omitempty"`
}

// Comparison operators of attributes and event properties.
const (
	OpEq      = "eq"
	OpNe      = "ne"
	OpIn      = "in"
	OpGt      = "gt"
	OpGte     = "gte"
	OpLt      = "lt"
	OpLte     = "lte"
	OpBetween = "between" // min <= v <= max
	OpExists  = "exists"
)

var ops = []string{OpEq, OpNe, OpIn, OpGt, OpGte, OpLt, OpLte, OpBetween, OpExists}

// Compare is a comparison of one value. Numbers compare as numbers when
// both sides parse as numbers, else as strings.
type Compare struct {
	Op     string   `json:"op"`
	Value  string   `json:"value,omitempty"`
	Values []string `json:"values,omitempty"`
	Min    *float64 `json:"min,omitempty"`
	Max    *float64 `json:"max,omitempty"`
}

// AttributeCond compares one attribute of the friend (gender, age, region,
// os or a custom key).
type AttributeCond struct {
	Key string `json:"key"`
	Compare
}

// PropCond compares one property of an event (amount, url, product...).
type PropCond struct {
	Key string `json:"key"`
	Compare
}

// Event types.
const (
	EventClick     = "click"
	EventPostback  = "postback"
	EventPageView  = "page_view"
	EventAddToCart = "add_to_cart"
	EventPurchase  = "purchase"
	EventCustom    = "custom"
	EventMessage   = "message"
	// EventDelivered is recorded by Stepcast when a step's push is
	// accepted: the basis of impression audiences.
	EventDelivered = "delivered"
)

// EventTypes lists every event type a condition can name.
var EventTypes = []string{EventClick, EventPostback, EventPageView, EventAddToCart, EventPurchase, EventCustom, EventMessage, EventDelivered}

// EventCond matches events. Empty fields match anything.
type EventCond struct {
	Type string `json:"type"`
	// Name matches a custom event's name or a postback's data.
	Name string `json:"name,omitempty"`
	// Node matches clicks and deliveries of this node of the scenario.
	Node string `json:"node,omitempty"`
	// Scenario names the scenario (its key) whose node is meant; empty
	// means the scenario being run. An audience's rule, which runs in no
	// scenario, names it to narrow to one scenario's steps.
	Scenario string     `json:"scenario,omitempty"`
	Props    []PropCond `json:"props,omitempty"`
	// Within is the window back from now, a duration such as "72h";
	// empty means since the enrollment started.
	Within string `json:"within,omitempty"`
}

// Event is something the friend did, as conditions see it.
type Event struct {
	Type string
	Name string `json:",omitempty"`
	// ScenarioKey and Node say which step a click or postback came from.
	ScenarioKey string            `json:",omitempty"`
	Node        string            `json:",omitempty"`
	Props       map[string]string `json:",omitempty"`
	At          time.Time
}

// Facts is what conditions are evaluated on: the friend as the database
// has them when the workflow asks.
type Facts struct {
	Attributes map[string]string
	Route      string
	Tags       []string
	// Audiences holds the membership of each audience the condition names.
	Audiences map[string]bool
	// Events are the friend's events since Since, oldest first.
	Events []Event
}

// Eval evaluates the condition at now. scenarioKey scopes event node
// references to the scenario; since is the enrollment's start, the default
// window of events.
func (c *Condition) Eval(f *Facts, now, since time.Time, scenarioKey string) bool {
	switch {
	case c.All != nil:
		for i := range c.All {
			if !c.All[i].Eval(f, now, since, scenarioKey) {
				return false
			}
		}
		return true
	case c.Any != nil:
		for i := range c.Any {
			if c.Any[i].Eval(f, now, since, scenarioKey) {
				return true
			}
		}
		return false
	case c.Not != nil:
		return !c.Not.Eval(f, now, since, scenarioKey)
	case c.Attribute != nil:
		v, ok := f.Attributes[c.Attribute.Key]
		return c.Attribute.Compare.test(v, ok)
	case c.Route != nil:
		return f.Route != "" && slices.Contains(c.Route, f.Route)
	case c.Tag != "":
		return slices.Contains(f.Tags, c.Tag)
	case c.Audience != "":
		return f.Audiences[c.Audience]
	case c.Event != nil:
		from := c.Event.windowStart(now, since)
		for _, ev := range f.Events {
			if !ev.At.Before(from) && !ev.At.After(now) && c.Event.Matches(&ev, scenarioKey) {
				return true
			}
		}
		return false
	}
	return false
}

// windowStart is the earliest time an event may have to count.
func (e *EventCond) windowStart(now, since time.Time) time.Time {
	if e.Within == "" {
		return since
	}
	d, err := time.ParseDuration(e.Within)
	if err != nil {
		return since
	}
	return now.Add(-d)
}

// Matches reports whether ev is an event this condition names, ignoring
// the time window.
func (e *EventCond) Matches(ev *Event, scenarioKey string) bool {
	if e.Type != ev.Type {
		return false
	}
	if e.Name != "" && e.Name != ev.Name {
		return false
	}
	if e.Node != "" && e.Node != ev.Node {
		return false
	}
	want := e.Scenario
	if want == "" && e.Node != "" {
		want = scenarioKey
	}
	if want != "" && ev.ScenarioKey != want {
		return false
	}
	for _, p := range e.Props {
		v, ok := ev.Props[p.Key]
		if !p.Compare.test(v, ok) {
			return false
		}
	}
	return true
}

func (c *Compare) test(v string, present bool) bool {
	if c.Op == OpExists {
		return present && v != ""
	}
	if !present {
		return c.Op == OpNe
	}
	switch c.Op {
	case OpEq:
		return v == c.Value
	case OpNe:
		return v != c.Value
	case OpIn:
		return slices.Contains(c.Values, v)
	case OpBetween:
		n, err := strconv.ParseFloat(v, 64)
		return err == nil && (c.Min == nil || n >= *c.Min) && (c.Max == nil || n <= *c.Max)
	}
	cmp, ok := compareValues(v, c.Value)
	if !ok {
		return false
	}
	switch c.Op {
	case OpGt:
		return cmp > 0
	case OpGte:
		return cmp >= 0
	case OpLt:
		return cmp < 0
	case OpLte:
		return cmp <= 0
	}
	return false
}

// compareValues compares as numbers when both are numbers.
func compareValues(a, b string) (int, bool) {
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	if errA == nil || errB == nil {
		return 0, false
	}
	switch {
	case a < b:
		return -1, true
	case a > b:
		return 1, true
	}
	return 0, true
}

// Needs says what facts evaluating the conditions needs, so the activity
// loads no more than that.
type Needs struct {
	Audiences []string
	// EventsSince is how far back events are needed; zero means none.
	EventsSince time.Time
}

// Needs adds what c needs at now to n.
func (c *Condition) Needs(n *Needs, now, since time.Time) {
	for i := range c.All {
		c.All[i].Needs(n, now, since)
	}
	for i := range c.Any {
		c.Any[i].Needs(n, now, since)
	}
	if c.Not != nil {
		c.Not.Needs(n, now, since)
	}
	if c.Audience != "" && !slices.Contains(n.Audiences, c.Audience) {
		n.Audiences = append(n.Audiences, c.Audience)
	}
	if c.Event != nil {
		from := c.Event.windowStart(now, since)
		if n.EventsSince.IsZero() || from.Before(n.EventsSince) {
			n.EventsSince = from
		}
	}
}

// validate reports problems of the condition under path.
func (c *Condition) validate(ps *problems, path string, audiences map[string]bool) {
	set := 0
	for _, b := range []bool{c.All != nil, c.Any != nil, c.Not != nil, c.Attribute != nil, c.Route != nil, c.Tag != "", c.Audience != "", c.Event != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		ps.add(path, "must have exactly one of all, any, not, attribute, route, tag, audience, event")
		return
	}
	switch {
	case c.All != nil || c.Any != nil:
		list, name := c.All, "all"
		if c.Any != nil {
			list, name = c.Any, "any"
		}
		if len(list) == 0 {
			ps.add(path+"."+name, "must have at least one condition")
		}
		for i := range list {
			list[i].validate(ps, fmt.Sprintf("%s.%s[%d]", path, name, i), audiences)
		}
	case c.Not != nil:
		c.Not.validate(ps, path+".not", audiences)
	case c.Attribute != nil:
		if c.Attribute.Key == "" {
			ps.add(path+".attribute.key", "is required")
		}
		c.Attribute.Compare.validate(ps, path+".attribute")
	case c.Route != nil:
		if len(c.Route) == 0 {
			ps.add(path+".route", "must name at least one add route")
		}
	case c.Audience != "":
		if audiences != nil && !audiences[c.Audience] {
			ps.add(path+".audience", fmt.Sprintf("names no audience of this channel: %q", c.Audience))
		}
	case c.Event != nil:
		c.Event.validate(ps, path+".event")
	}
}

func (e *EventCond) validate(ps *problems, path string) {
	if !slices.Contains(EventTypes, e.Type) {
		ps.add(path+".type", fmt.Sprintf("%q is not an event type (one of: %v)", e.Type, EventTypes))
	}
	if e.Within != "" {
		if d, err := time.ParseDuration(e.Within); err != nil || d <= 0 {
			ps.add(path+".within", fmt.Sprintf("%q is not a positive duration such as 72h", e.Within))
		}
	}
	for i := range e.Props {
		p := fmt.Sprintf("%s.props[%d]", path, i)
		if e.Props[i].Key == "" {
			ps.add(p+".key", "is required")
		}
		e.Props[i].Compare.validate(ps, p)
	}
}

func (c *Compare) validate(ps *problems, path string) {
	switch c.Op {
	case OpIn:
		if len(c.Values) == 0 {
			ps.add(path+".values", "is required for op in")
		}
	case OpBetween:
		if c.Min == nil && c.Max == nil {
			ps.add(path, "op between needs min and/or max")
		}
		if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
			ps.add(path, "min is greater than max")
		}
	case OpExists:
	case OpEq, OpNe:
	case OpGt, OpGte, OpLt, OpLte:
		if c.Value == "" {
			ps.add(path+".value", "is required for op "+c.Op)
		}
	default:
		ps.add(path+".op", fmt.Sprintf("%q is not an operator (one of: %v)", c.Op, ops))
	}
}

// ValidateCondition checks a condition standing alone (an audience's rule);
// it may not refer to audiences, so audiences cannot nest.
func ValidateCondition(c *Condition, path string) error {
	var ps problems
	c.validate(&ps, path, map[string]bool{})
	return ps.err()
}
