package scenario

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stepcast/stepcast"
)

// MaxMessagesPerNode is LINE's limit of message objects in one push.
const MaxMessagesPerNode = 5

// Validate checks that the document can run and returns an EINVALID error
// listing every problem with its path, or nil.
func (d *Document) Validate() error {
	var ps problems
	if d.Name == "" {
		ps.add("name", "is required")
	}
	if d.TimeZone != "" {
		if _, err := time.LoadLocation(d.TimeZone); err != nil {
			ps.add("timezone", fmt.Sprintf("%q is not a known IANA time zone", d.TimeZone))
		}
	}
	switch d.Start.Type {
	case StartFollow:
	case "":
		ps.add("start.type", "is required (one of: follow)")
	default:
		ps.add("start.type", fmt.Sprintf("%q is not a start type (one of: follow)", d.Start.Type))
	}
	for i, r := range d.Start.Routes {
		if r == "" {
			ps.add(fmt.Sprintf("start.routes[%d]", i), "is empty")
		}
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
		d.validateNode(&ps, path, &n)
	}
	if d.Entry != "" {
		if _, ok := index[d.Entry]; !ok {
			ps.add("entry", fmt.Sprintf("names no node: %q", d.Entry))
		}
	}
	for i, n := range d.Nodes {
		if n.Next != "" {
			if _, ok := index[n.Next]; !ok {
				ps.add(fmt.Sprintf("nodes[%d].next", i), fmt.Sprintf("names no node: %q", n.Next))
			}
		}
	}
	d.checkGraph(&ps, index)
	return ps.err()
}

func (d *Document) validateNode(ps *problems, path string, n *Node) {
	switch n.Type {
	case NodeWait:
		if n.Wait == nil {
			ps.add(path+".wait", "is required for a wait node")
			break
		}
		validateWait(ps, path+".wait", n.Wait)
	case NodeMessage:
		if n.Message == nil {
			ps.add(path+".message", "is required for a message node")
			break
		}
		validateMessages(ps, path+".message.messages", n.Message.Messages)
	case NodeExit:
		if n.Next != "" {
			ps.add(path+".next", "an exit node ends the enrollment and has no next node")
		}
	case "":
		ps.add(path+".type", "is required (one of: wait, message, exit)")
	default:
		ps.add(path+".type", fmt.Sprintf("%q is not a node type (one of: wait, message, exit)", n.Type))
	}
	if n.Type != NodeWait && n.Wait != nil {
		ps.add(path+".wait", "only a wait node has a wait")
	}
	if n.Type != NodeMessage && n.Message != nil {
		ps.add(path+".message", "only a message node has messages")
	}
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
	for i, raw := range msgs {
		var m struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			ps.add(fmt.Sprintf("%s[%d]", path, i), "is not a message object")
			continue
		}
		if m.Type == "" {
			ps.add(fmt.Sprintf("%s[%d].type", path, i), "is required")
		}
	}
}

// checkGraph reports nodes that cannot be reached from the entry and cycles,
// which would make an enrollment loop for ever.
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
		if j, ok := index[d.Nodes[i].Next]; ok {
			switch state[j] {
			case onPath:
				ps.add(fmt.Sprintf("nodes[%d].next", i), fmt.Sprintf("makes a cycle back to %q", d.Nodes[j].ID))
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
