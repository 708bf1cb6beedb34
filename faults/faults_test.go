// Package faults_test injects faults into a running Stepcast (a worker
// killed mid-send, Temporal and PostgreSQL stopped and restarted, LINE
// failing) and counts what arrived at the fake LINE: every due step
// exactly once.
package faults_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/stepcast/stepcast/fakeline"
	"github.com/stepcast/stepcast/internal/testenv"
)

const (
	adminToken    = "faults-admin-token"
	channelSecret = "faults-channel-secret"
)

// system is a Stepcast made of real processes.
type system struct {
	t       *testing.T
	env     map[string]string
	url     string
	line    *fakeline.Server
	api     *proc
	worker  *proc
	channel uint
}

func newSystem(t *testing.T, databaseURL, temporalAddr string) *system {
	line, err := fakeline.New()
	if err != nil {
		t.Fatal(err)
	}
	lineSrv := httptest.NewServer(line.Handler())
	t.Cleanup(lineSrv.Close)
	httpAddr := freeAddr(t)
	env := map[string]string{
		"DATABASE_URL":              databaseURL,
		"TEMPORAL_ADDRESS":          temporalAddr,
		"STEPCAST_TASK_QUEUE":       "faults-" + randomHex(6),
		"STEPCAST_ADMIN_TOKEN":      adminToken,
		"STEPCAST_LINK_SECRET":      "faults-link-secret-0123456789abcdef",
		"LINE_API_BASE_URL":         lineSrv.URL,
		"STEPCAST_HTTP_ADDR":        httpAddr,
		"STEPCAST_WORKER_HTTP_ADDR": freeAddr(t),
		"STEPCAST_PUBLIC_URL":       "http://" + httpAddr,
		"STEPCAST_LOG_FORMAT":       "text",
	}
	migrate := start(t, "migrate", env, binary, "migrate")
	select {
	case <-migrate.done:
		if migrate.cmd.ProcessState.ExitCode() != 0 {
			t.Fatalf("migrate failed:\n%s", migrate.out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("migrate did not finish")
	}
	s := &system{t: t, env: env, url: "http://" + httpAddr, line: line}
	s.api = start(t, "api", env, binary, "api")
	s.worker = start(t, "worker", env, binary, "worker")
	waitFor(t, 60*time.Second, "the API to be ready", func() bool { return httpOK(s.url + "/readyz") })
	var ch struct{ ID uint }
	api(t, s.url, "POST", "/api/v1/channels", map[string]any{"name": "Faults", "lineChannelId": randomHex(5),
		"channelSecret": channelSecret, "accessToken": "faults-token"}, &ch)
	s.channel = ch.ID
	return s
}

func (s *system) restartWorker() {
	s.worker = start(s.t, "worker", s.env, binary, "worker")
}

// publish makes a scenario: a message after wait, then another after gap.
func (s *system) publish(wait, gap string) {
	msg := func(id, body, next string) map[string]any {
		n := map[string]any{"id": id, "type": "message", "message": map[string]any{"messages": []any{map[string]any{"type": "text", "text": body}}}}
		if next != "" {
			n["next"] = next
		}
		return n
	}
	doc := map[string]any{"name": "Faults", "start": map[string]any{"type": "follow"}, "nodes": []any{
		map[string]any{"id": "w1", "type": "wait", "wait": map[string]any{"after": wait}, "next": "one"},
		msg("one", "step one", "w2"),
		map[string]any{"id": "w2", "type": "wait", "wait": map[string]any{"after": gap, "from": "previous"}, "next": "two"},
		msg("two", "step two", ""),
	}}
	var sc struct{ ID uint }
	api(s.t, s.url, "POST", fmt.Sprintf("/api/v1/channels/%d/scenarios", s.channel), map[string]any{"key": "faults", "document": doc}, &sc)
	api(s.t, s.url, "POST", fmt.Sprintf("/api/v1/scenarios/%d/publish", sc.ID), nil, &struct{}{})
}

// follow sends a signed follow webhook and returns the status.
func (s *system) follow(user string) int {
	body := followBody(user, "01"+randomHex(12), false)
	return s.post(body)
}

func (s *system) post(body []byte) int {
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/webhooks/line/%d", s.url, s.channel), bytes.NewReader(body))
	req.Header.Set("X-Line-Signature", fakeline.Sign(channelSecret, body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

func followBody(user, eventID string, redelivery bool) []byte {
	b, _ := json.Marshal(map[string]any{"destination": "U" + randomHex(16), "events": []any{map[string]any{
		"type": "follow", "mode": "active", "timestamp": time.Now().UnixMilli(), "replyToken": randomHex(16),
		"source": map[string]any{"type": "user", "userId": user}, "webhookEventId": eventID,
		"deliveryContext": map[string]any{"isRedelivery": redelivery}, "follow": map[string]any{"isUnblocked": false},
	}}})
	return b
}

// assertExactlyOnce checks that each friend got each step exactly once.
func (s *system) assertExactlyOnce(users []string, steps int, within time.Duration) {
	s.t.Helper()
	waitFor(s.t, within, "every step at the fake LINE", func() bool {
		for _, u := range users {
			if len(s.line.PushesTo(u)) < steps {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // let any duplicate arrive
	for _, u := range users {
		if n := len(s.line.PushesTo(u)); n != steps {
			s.t.Errorf("friend %s got %d pushes, want exactly %d", u, n, steps)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// A worker killed with SIGKILL in the middle of sends (one push LINE had
// accepted, one it had not) and started again: every due step arrives
// exactly once.
func TestWorkerKilledMidSend(t *testing.T) {
	s := newSystem(t, testenv.PostgresDatabase(t), testenv.TemporalAddress(t))
	s.publish("2s", "2s")
	accepted, pending := testenv.UserID(), testenv.UserID()
	// The first push is accepted, then its answer hangs; the second hangs
	// before it is accepted. The worker dies during both.
	s.line.InjectFault(fakeline.Fault{Accepted: true, Delay: time.Minute, Count: 1})
	s.line.InjectFault(fakeline.Fault{Delay: time.Minute, Count: 1})
	if s.follow(accepted) != 200 || s.follow(pending) != 200 {
		t.Fatal("follow refused")
	}
	waitFor(t, 30*time.Second, "the first push to be accepted", func() bool { return len(s.line.Pushes()) == 1 })
	time.Sleep(time.Second) // the second push is in flight too
	s.worker.stop(syscall.SIGKILL)
	s.restartWorker()
	// Temporal retries the sends when their 30s start-to-close timeout ends.
	s.assertExactlyOnce([]string{accepted, pending}, 2, 3*time.Minute)
	// Both first steps were tried again after the kill: the accepted one
	// was answered 409 and counted as sent, not pushed twice.
	var ds struct {
		Items []struct {
			NodeID, Status string
			Attempts       int
		}
	}
	api(t, s.url, "GET", fmt.Sprintf("/api/v1/channels/%d/deliveries", s.channel), nil, &ds)
	retried := 0
	for _, d := range ds.Items {
		if d.Status != "sent" {
			t.Errorf("delivery %+v is not sent", d)
		}
		if d.NodeID == "one" && d.Attempts >= 2 {
			retried++
		}
	}
	if retried != 2 {
		t.Fatalf("deliveries = %+v, want both first steps retried after the kill", ds.Items)
	}
}

// LINE answering 500, 429 (not the monthly limit) and slowly: the sends
// are retried with backoff and nothing is sent twice.
func TestLINEFailures(t *testing.T) {
	s := newSystem(t, testenv.PostgresDatabase(t), testenv.TemporalAddress(t))
	s.publish("1s", "1s")
	s.line.InjectFault(fakeline.Fault{Status: 500, Count: 2})
	s.line.InjectFault(fakeline.Fault{Status: 429, Count: 2})
	s.line.InjectFault(fakeline.Fault{Status: 500, Accepted: true, Count: 1})
	s.line.InjectFault(fakeline.Fault{Delay: 3 * time.Second, Count: 2})
	users := []string{testenv.UserID(), testenv.UserID(), testenv.UserID()}
	for _, u := range users {
		s.follow(u)
	}
	s.assertExactlyOnce(users, 2, 3*time.Minute)
}

// The same webhook delivered many times, concurrently, some marked as
// redeliveries: one enrollment.
func TestRedeliveredWebhook(t *testing.T) {
	s := newSystem(t, testenv.PostgresDatabase(t), testenv.TemporalAddress(t))
	s.publish("1s", "1s")
	user := testenv.UserID()
	id := "01" + randomHex(12)
	codes := make(chan int, 20)
	for i := range 20 {
		go func() { codes <- s.post(followBody(user, id, i > 0)) }()
	}
	for range 20 {
		if c := <-codes; c != 200 {
			t.Fatalf("a delivery answered %d", c)
		}
	}
	s.assertExactlyOnce([]string{user}, 2, time.Minute)
	var es struct{ Items []any }
	api(t, s.url, "GET", fmt.Sprintf("/api/v1/channels/%d/enrollments", s.channel), nil, &es)
	if len(es.Items) != 1 {
		t.Fatalf("%d enrollments, want 1", len(es.Items))
	}
}
