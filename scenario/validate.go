package scenario

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/lineschema"
)

// MaxMessagesPerNode is LINE's limit of message objects in one push.
const MaxMessagesPerNode = 5

// Known is what a document may refer to on its channel. A nil map is not
// checked (a file validated away from any channel).
type Known struct {
	Audiences map[string]bool
	// Tags are the channel's tags; tags that the document itself adds count
	// as known too.
	Tags map[string]bool
}

// Validate checks that the document can run, without channel data.
func (d *Document) Validate() error { return d.ValidateWith(Known{}) }

// ValidateWith checks that the document can run and returns an EINVALID
// error listing every problem with its path, or nil.
func (d *Document) ValidateWith(k Known) error {
	var ps problems
	if d.Name == "" {
		ps.add("name", "is required")
	}
	if d.TimeZone != "" {
		if _, err := time.LoadLocation(d.TimeZone); err != nil {
			ps.add("timezone", fmt.Sprintf("%q is not a known IANA time zone", d.TimeZone))
		}
	}
	d.validateStart(&ps, k)
	if d.Period != nil && d.Period.From != nil && d.Period.Until != nil && !d.Period.From.Before(*d.Period.Until) {
		ps.add("period", "from must be before until")
	}
	if d.Exit != nil {
		for i := range d.Exit.Events {
			d.Exit.Events[i].validate(&ps, fmt.Sprintf("exit.events[%d]", i))
		}
		checkAudience(&ps, "exit.audience", d.Exit.Audience, k)
	}
	if d.Conversion != nil {
		d.Conversion.validate(&ps, "conversion")
	}
	if len(d.Nodes) == 0 {
		ps.add("nodes", "must have at least one node")
		return ps.err()
	}

	index := map[string]int{}
	for i, n := range d.Nodes {
		path := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.ID == "":
			ps.add(path+".id", "is required")
		default:
			if j, dup := index[n.ID]; dup {
				ps.add(path+".id", fmt.Sprintf("%q is already the id of nodes[%d]", n.ID, j))
			} else {
				index[n.ID] = i
			}
		}
	}
	if k.Tags != nil {
		k.Tags = d.withOwnTags(k.Tags)
	}
	for i := range d.Nodes {
		d.validateNode(&ps, fmt.Sprintf("nodes[%d]", i), &d.Nodes[i], index, k)
	}
	if d.Entry != "" {
		if _, ok := index[d.Entry]; !ok {
			ps.add("entry", fmt.Sprintf("names no node: %q", d.Entry))
		}
	}
	d.checkGraph(&ps, index)
	return ps.err()
}

func (d *Document) validateStart(ps *problems, k Known) {
	switch d.Start.Type {
	case StartFollow, StartManual:
		if d.Start.Audience != "" {
			ps.add("start.audience", "only an audience start names an audience")
		}
	case StartAudience:
		if d.Start.Audience == "" {
			ps.add("start.audience", "is required for an audience start")
		}
		checkAudience(ps, "start.audience", d.Start.Audience, k)
	case "":
		ps.add("start.type", "is required (one of: follow, audience, manual)")
	default:
		ps.add("start.type", fmt.Sprintf("%q is not a start type (one of: follow, audience, manual)", d.Start.Type))
	}
	if len(d.Start.Routes) > 0 && d.Start.Type != StartFollow {
		ps.add("start.routes", "only a follow start filters by add route")
	}
	for i, r := range d.Start.Routes {
		if r == "" {
			ps.add(fmt.Sprintf("start.routes[%d]", i), "is empty")
		}
	}
	if d.Start.EnrollRate < 0 || d.Start.EnrollRate > 1000 {
		ps.add("start.enrollRate", "must be 0 (the default) to 1000 friends a second")
	}
	if d.Start.EnrollRate != 0 && d.Start.Type != StartAudience {
		ps.add("start.enrollRate", "only an audience start enrolls existing friends")
	}
	switch d.Start.Reentry {
	case "", ReentryNever, ReentryAfterExit:
	default:
		ps.add("start.reentry", fmt.Sprintf("%q is not a re-entry rule (one of: never, after_exit)", d.Start.Reentry))
	}
}

func checkAudience(ps *problems, path, key string, k Known) {
	if key != "" && k.Audiences != nil && !k.Audiences[key] {
		ps.add(path, fmt.Sprintf("names no audience of this channel: %q", key))
	}
}

// withOwnTags adds the tags that the document's tag nodes add.
func (d *Document) withOwnTags(tags map[string]bool) map[string]bool {
	out := make(map[string]bool, len(tags))
	for t := range tags {
		out[t] = true
	}
	for _, n := range d.Nodes {
		if n.Tag != nil {
			for _, t := range n.Tag.Add {
				out[t] = true
			}
		}
	}
	return out
}

func (d *Document) validateNode(ps *problems, path string, n *Node, index map[string]int, k Known) {
	target := func(p, id string, required bool) {
		if id == "" {
			if required {
				ps.add(p, "is required")
			}
			return
		}
		if _, ok := index[id]; !ok {
			ps.add(p, fmt.Sprintf("names no node: %q", id))
		}
	}
	fields := map[string]bool{"wait": n.Wait != nil, "message": n.Message != nil, "branch": n.Branch != nil,
		"waitEvent": n.WaitEvent != nil, "split": n.Split != nil, "tag": n.Tag != nil}
	own := map[string]string{NodeWait: "wait", NodeMessage: "message", NodeBranch: "branch",
		NodeWaitEvent: "waitEvent", NodeSplit: "split", NodeTag: "tag"}
	for _, f := range []string{"wait", "message", "branch", "waitEvent", "split", "tag"} {
		if fields[f] && own[n.Type] != f {
			ps.add(path+"."+f, fmt.Sprintf("only a %s node has %s", typeOf(own, f), f))
		}
	}
	if f, ok := own[n.Type]; ok && !fields[f] {
		ps.add(path+"."+f, fmt.Sprintf("is required for a %s node", n.Type))
		return
	}
	switch n.Type {
	case NodeWait:
		validateWait(ps, path+".wait", n.Wait)
		target(path+".next", n.Next, false)
	case NodeMessage:
		validateMessages(ps, path+".message.messages", n.Message.Messages)
		target(path+".next", n.Next, false)
	case NodeTag:
		if len(n.Tag.Add)+len(n.Tag.Remove) == 0 {
			ps.add(path+".tag", "must add or remove at least one tag")
		}
		for i, t := range n.Tag.Add {
			if t == "" {
				ps.add(fmt.Sprintf("%s.tag.add[%d]", path, i), "is empty")
			}
		}
		for i, t := range n.Tag.Remove {
			if t == "" {
				ps.add(fmt.Sprintf("%s.tag.remove[%d]", path, i), "is empty")
			}
		}
		target(path+".next", n.Next, false)
	case NodeBranch:
		if len(n.Branch.Cases) == 0 {
			ps.add(path+".branch.cases", "must have at least one case")
		}
		for i := range n.Branch.Cases {
			c := &n.Branch.Cases[i]
			p := fmt.Sprintf("%s.branch.cases[%d]", path, i)
			c.When.validate(ps, p+".when", k.Audiences)
			checkTags(ps, p+".when", &c.When, k.Tags)
			target(p+".next", c.Next, true)
		}
		target(path+".branch.default", n.Branch.Default, false)
		noNext(ps, path, n)
	case NodeWaitEvent:
		n.WaitEvent.Event.validate(ps, path+".waitEvent.event")
		validateWait(ps, path+".waitEvent.timeout", &n.WaitEvent.Timeout)
		target(path+".waitEvent.onEvent", n.WaitEvent.OnEvent, false)
		target(path+".waitEvent.onTimeout", n.WaitEvent.OnTimeout, false)
		noNext(ps, path, n)
	case NodeSplit:
		if len(n.Split.Paths) < 2 {
			ps.add(path+".split.paths", "must have at least two paths")
		}
		for i, sp := range n.Split.Paths {
			p := fmt.Sprintf("%s.split.paths[%d]", path, i)
			if sp.Weight <= 0 {
				ps.add(p+".weight", "must be a positive whole number")
			}
			target(p+".next", sp.Next, true)
		}
		noNext(ps, path, n)
	case NodeExit:
		if n.Next != "" {
			ps.add(path+".next", "an exit node ends the enrollment and has no next node")
		}
	case "":
		ps.add(path+".type", fmt.Sprintf("is required (one of: %v)", NodeTypes))
	default:
		ps.add(path+".type", fmt.Sprintf("%q is not a node type (one of: %v)", n.Type, NodeTypes))
	}
}

func typeOf(own map[string]string, field string) string {
	for t, f := range own {
		if f == field {
			return t
		}
	}
	return ""
}

// noNext refuses next on nodes whose paths are elsewhere.
func noNext(ps *problems, path string, n *Node) {
	if n.Next != "" {
		ps.add(path+".next", fmt.Sprintf("a %s node has no next; its paths are in its own settings", n.Type))
	}
}

// checkTags reports tag conditions that name a tag nobody has and no node
// adds: most likely a typo.
func checkTags(ps *problems, path string, c *Condition, tags map[string]bool) {
	if tags == nil {
		return
	}
	var walk func(p string, c *Condition)
	walk = func(p string, c *Condition) {
		if c.Tag != "" && !tags[c.Tag] {
			ps.add(p+".tag", fmt.Sprintf("tag %q is not a tag of this channel and no node adds it", c.Tag))
		}
		for i := range c.All {
			walk(fmt.Sprintf("%s.all[%d]", p, i), &c.All[i])
		}
		for i := range c.Any {
			walk(fmt.Sprintf("%s.any[%d]", p, i), &c.Any[i])
		}
		if c.Not != nil {
			walk(p+".not", c.Not)
		}
	}
	walk(path, c)
}

func validateWait(ps *problems, path string, w *Wait) {
	if w.After != "" {
		if w.Days != nil || w.At != "" {
			ps.add(path, "has both a plain duration (after) and a calendar time (days, at); use one")
		}
		d, err := time.ParseDuration(w.After)
		switch {
		case err != nil:
			ps.add(path+".after", fmt.Sprintf("%q is not a duration such as 90s, 30m or 48h", w.After))
		case d < 0:
			ps.add(path+".after", "must not be negative")
		}
	} else if w.Days == nil && w.At == "" {
		ps.add(path, "needs days and/or at, or after")
	}
	if w.Days != nil && *w.Days < 0 {
		ps.add(path+".days", "must not be negative")
	}
	if w.At != "" {
		if _, _, err := ParseClock(w.At); err != nil {
			ps.add(path+".at", err.Error())
		}
	}
	switch w.From {
	case "", FromEnrollment, FromPrevious:
	default:
		ps.add(path+".from", fmt.Sprintf("%q is not a base (one of: enrollment, previous)", w.From))
	}
}

func validateMessages(ps *problems, path string, msgs []json.RawMessage) {
	if len(msgs) == 0 {
		ps.add(path, "must have 1 to 5 messages")
		return
	}
	if len(msgs) > MaxMessagesPerNode {
		ps.add(path, fmt.Sprintf("has %d messages; LINE sends at most %d in one push", len(msgs), MaxMessagesPerNode))
	}
	// What LINE itself would refuse, from its own OpenAPI document; the
	// count was reported above.
	for _, p := range lineschema.ValidateMessages(msgs) {
		if p.Path != "" {
			ps.add(path+p.Path, p.Message)
		}
	}
}

// checkGraph reports nodes that cannot be reached from the entry and
// cycles, which would make an enrollment loop for ever.
func (d *Document) checkGraph(ps *problems, index map[string]int) {
	entry, ok := index[d.EntryID()]
	if !ok {
		return
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(d.Nodes))
	var visit func(i int)
	visit = func(i int) {
		state[i] = onPath
		for _, next := range d.Nodes[i].Successors() {
			j, ok := index[next]
			if !ok {
				continue
			}
			switch state[j] {
			case onPath:
				ps.add(fmt.Sprintf("nodes[%d]", i), fmt.Sprintf("%q leads back to %q: scenarios may not loop", d.Nodes[i].ID, d.Nodes[j].ID))
			case unseen:
				visit(j)
			}
		}
		state[i] = done
	}
	visit(entry)
	for i, s := range state {
		if s == unseen && d.Nodes[i].ID != "" {
			ps.add(fmt.Sprintf("nodes[%d]", i), fmt.Sprintf("%q cannot be reached from the entry node", d.Nodes[i].ID))
		}
	}
}

type problems []stepcast.Problem

func (ps *problems) add(path, msg string) {
	*ps = append(*ps, stepcast.Problem{Path: path, Message: msg})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &stepcast.Error{Code: stepcast.EINVALID, Message: "scenario is not valid", Problems: ps}
}
