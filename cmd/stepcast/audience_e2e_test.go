package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
)

// Publishing an audience-start scenario enrolls the audience's existing
// members through a throttled bulk job whose progress the API shows.
func TestAudienceStartEnrollsExistingFriends(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	var vips, others []string
	for i := range 7 {
		u := testenv.UserID()
		s.event(ch, "follow", u)
		if i%2 == 0 {
			vips = append(vips, u)
		} else {
			others = append(others, u)
		}
	}
	waitFor(t, 20*time.Second, "seven friends", func() bool {
		var l struct{ Items []any }
		s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/friends", ch), nil, &l)
		return len(l.Items) == 7
	})
	for _, u := range vips {
		s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/friends/%s/tags", ch, u), map[string]any{"add": []any{"vip"}}, nil)
	}
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/audiences", ch), map[string]any{
		"key": "vips", "name": "VIPs", "kind": "chat_tag", "rule": map[string]any{"tag": "vip"}}, nil)
	// An uploaded audience too, to show the kind works as a condition.
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/audiences", ch), map[string]any{
		"key": "list", "name": "List", "kind": "uploaded", "userIds": []any{others[0]}}, nil)

	id := s.publish(ch, "vip-offer", map[string]any{"name": "VIP", "start": map[string]any{"type": "audience", "audience": "vips", "enrollRate": 50},
		"nodes": []any{
			map[string]any{"id": "listed?", "type": "branch", "branch": map[string]any{"cases": []any{
				map[string]any{"when": map[string]any{"audience": "list"}, "next": "listed"}}, "default": "hello"}},
			msgNode("hello", "VIP offer", ""),
			msgNode("listed", "never: the list has no VIP", ""),
		}})
	var p struct {
		Progress struct {
			Checked, Enrolled int
			Done              bool
		}
	}
	waitFor(t, 30*time.Second, "the bulk enrollment to finish", func() bool {
		return s.do("GET", fmt.Sprintf("/api/v1/scenarios/%d/audience-enrollment", id), nil, &p) == 200 && p.Progress.Done
	})
	if p.Progress.Checked != 7 || p.Progress.Enrolled != len(vips) {
		t.Fatalf("progress = %+v, want 7 checked and %d enrolled", p.Progress, len(vips))
	}
	waitFor(t, 20*time.Second, "the offers", func() bool {
		for _, u := range vips {
			if len(s.line.PushesTo(u)) != 1 {
				return false
			}
		}
		return true
	})
	for _, u := range others {
		if len(s.line.PushesTo(u)) != 0 {
			t.Fatalf("friend %s outside the audience got a push", u)
		}
	}
	if got := pushTexts(s.line.PushesTo(vips[0])); got[0] != "text:VIP offer" {
		t.Fatalf("vip got %q", got)
	}
}
