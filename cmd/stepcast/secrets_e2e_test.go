package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepcast/stepcast/fakeline"
	"github.com/stepcast/stepcast/internal/testenv"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Secrets never reach the logs, even at debug level and when requests
// carrying them fail.
func TestSecretsNeverLogged(t *testing.T) {
	var logs syncBuffer
	s := startSystem(t, withLogs(&logs))
	const secret, token = "very-secret-channel-secret", "very-secret-access-token"
	var created struct {
		ID        uint
		EventsKey string
	}
	s.mustDo("POST", "/api/v1/channels", map[string]any{"name": "S", "lineChannelId": randomHex(5),
		"channelSecret": secret, "accessToken": token}, &created)
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/scenarios", created.ID), map[string]any{"key": "w", "document": twoSteps(time.Second)}, &struct{}{})
	var list struct{ Items []struct{ ID uint } }
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/scenarios", created.ID), nil, &list)
	s.mustDo("POST", fmt.Sprintf("/api/v1/scenarios/%d/publish", list.Items[0].ID), nil, nil)
	user := testenv.UserID()
	body := fakeline.WebhookBody("follow", user, time.Now())
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/webhooks/line/%d", s.url, created.ID), bytes.NewReader(body))
	req.Header.Set("X-Line-Signature", fakeline.Sign(secret, body))
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", res, err)
	}
	waitFor(t, 20*time.Second, "the pushes", func() bool { return len(s.line.PushesTo(user)) == 2 })
	// Failures that carry secrets: a wrong admin token, a wrong events key,
	// a wrong signature.
	bad, _ := http.NewRequest("GET", s.url+"/api/v1/channels", nil)
	bad.Header.Set("Authorization", "Bearer wrong-admin-token-in-request")
	if res, err := http.DefaultClient.Do(bad); err == nil {
		res.Body.Close()
	}
	ev, _ := http.NewRequest("POST", fmt.Sprintf("%s/events/%d", s.url, created.ID), strings.NewReader(`{"userId":"`+user+`","type":"purchase"}`))
	ev.Header.Set("X-Stepcast-Key", created.EventsKey+"x")
	if res, err := http.DefaultClient.Do(ev); err == nil {
		res.Body.Close()
	}
	time.Sleep(time.Second)
	out := logs.String()
	if !strings.Contains(out, "enrolled") {
		t.Fatalf("the logs were not captured:\n%s", out)
	}
	for name, v := range map[string]string{"channel secret": secret, "access token": token, "admin token": testAdminToken,
		"wrong admin token": "wrong-admin-token-in-request", "events key": created.EventsKey, "link secret": s.env["STEPCAST_LINK_SECRET"]} {
		if strings.Contains(out, v) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
}
