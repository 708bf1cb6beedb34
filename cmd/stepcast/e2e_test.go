package main

// End-to-end tests: the real program (migrate, api, worker run by run())
// against real PostgreSQL (or the embedded database) and a real Temporal
// server, driven through HTTP like LINE and a marketer would, with the fake
// LINE server recording what was sent.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/stepcast/stepcast/fakeline"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/workflows"
)

const testAdminToken = "test-admin-token"

// system is one running Stepcast: API and worker processes in this test
// binary, with their own task queue so tests do not share workers.
type system struct {
	t        *testing.T
	url      string
	line     *fakeline.Server
	temporal client.Client
	env      map[string]string
}

type sysOpt func(env map[string]string)

func withSQLite(t *testing.T) sysOpt {
	return func(env map[string]string) {
		env["DATABASE_URL"] = ""
		env["STEPCAST_SQLITE_PATH"] = filepath.Join(t.TempDir(), "stepcast.db")
	}
}

func startSystem(t *testing.T, opts ...sysOpt) *system {
	t.Helper()
	line, err := fakeline.New()
	if err != nil {
		t.Fatal(err)
	}
	lineSrv := httptest.NewServer(line.Handler())
	t.Cleanup(lineSrv.Close)

	env := map[string]string{
		"DATABASE_URL":              testenv.PostgresDatabase(t),
		"TEMPORAL_ADDRESS":          testenv.TemporalAddress(t),
		"STEPCAST_TASK_QUEUE":       "e2e-" + strings.ToLower(randomHex(6)),
		"STEPCAST_ADMIN_TOKEN":      testAdminToken,
		"LINE_API_BASE_URL":         lineSrv.URL,
		"STEPCAST_HTTP_ADDR":        freeAddr(t),
		"STEPCAST_WORKER_HTTP_ADDR": freeAddr(t),
		"STEPCAST_LOG_LEVEL":        "warn",
		"STEPCAST_LINK_SECRET":      "e2e-link-secret-0123456789abcdef0123",
	}
	for _, o := range opts {
		o(env)
	}
	env["STEPCAST_PUBLIC_URL"] = "http://" + env["STEPCAST_HTTP_ADDR"]
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	if err := run(ctx, []string{"migrate"}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var wg sync.WaitGroup
	for _, cmd := range []string{"api", "worker"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx, []string{cmd}, getenv, io.Discard, logSink(t, env)); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", cmd, err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	s := &system{t: t, url: "http://" + env["STEPCAST_HTTP_ADDR"], line: line, temporal: testenv.Temporal(t), env: env}
	waitFor(t, 30*time.Second, "the API to be ready", func() bool {
		res, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return s
}

// logSinks lets a test read what the processes logged: the key is the
// env's task queue.
var logSinks sync.Map

func logSink(t *testing.T, env map[string]string) io.Writer {
	if w, ok := logSinks.Load(env["STEPCAST_TASK_QUEUE"]); ok {
		return w.(io.Writer)
	}
	if testing.Verbose() {
		return testWriter{t}
	}
	return io.Discard
}

// withLogs collects the processes' logs, at debug level, into w.
func withLogs(w io.Writer) sysOpt {
	return func(env map[string]string) {
		env["STEPCAST_LOG_LEVEL"] = "debug"
		logSinks.Store(env["STEPCAST_TASK_QUEUE"], w)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// do sends an admin API request and decodes the answer into out.
func (s *system) do(method, path string, body any, out any) int {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, r)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: answer %d is not JSON: %s", method, path, res.StatusCode, data)
		}
	}
	return res.StatusCode
}

// mustDo is do that requires a 2xx answer.
func (s *system) mustDo(method, path string, body any, out any) {
	s.t.Helper()
	var raw json.RawMessage
	code := s.do(method, path, body, &raw)
	if code/100 != 2 {
		s.t.Fatalf("%s %s: %d %s", method, path, code, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatal(err)
		}
	}
}

const testSecret = "e2e-channel-secret"

func (s *system) createChannel() uint {
	var ch struct{ ID uint }
	s.mustDo("POST", "/api/v1/channels", map[string]any{"name": "E2E shop", "lineChannelId": randomHex(5),
		"channelSecret": testSecret, "accessToken": "e2e-token"}, &ch)
	return ch.ID
}

// publish creates and publishes a scenario; it returns the scenario ID.
func (s *system) publish(channel uint, key string, doc map[string]any) uint {
	var sc struct{ ID uint }
	s.mustDo("POST", fmt.Sprintf("/api/v1/channels/%d/scenarios", channel), map[string]any{"key": key, "document": doc}, &sc)
	s.mustDo("POST", fmt.Sprintf("/api/v1/scenarios/%d/publish", sc.ID), nil, nil)
	return sc.ID
}

// webhook posts a signed webhook body and returns the status code.
func (s *system) webhook(channel uint, body []byte) int {
	s.t.Helper()
	return s.rawWebhook(channel, body, fakeline.Sign(testSecret, body))
}

func (s *system) rawWebhook(channel uint, body []byte, signature string) int {
	s.t.Helper()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/webhooks/line/%d", s.url, channel), bytes.NewReader(body))
	if signature != "" {
		req.Header.Set("X-Line-Signature", signature)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (s *system) event(channel uint, kind, user string) int {
	s.t.Helper()
	return s.webhook(channel, fakeline.WebhookBody(kind, user, time.Now()))
}

type enrollmentJSON struct {
	ID, ScenarioID, FriendID uint
	WorkflowID, RunID        string
	Status, ExitReason       string
}

func (s *system) enrollments(channel uint) []enrollmentJSON {
	var l struct{ Items []enrollmentJSON }
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/enrollments", channel), nil, &l)
	return l.Items
}

type deliveryJSON struct {
	NodeID, RetryKey, Status string
	Attempts                 int
}

func (s *system) deliveries(channel uint) []deliveryJSON {
	var l struct{ Items []deliveryJSON }
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/deliveries", channel), nil, &l)
	return l.Items
}

func (s *system) get(url string) string {
	s.t.Helper()
	res, err := http.Get(url)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return string(b)
}

func text(s string) map[string]any { return map[string]any{"type": "text", "text": s} }

// twoSteps is a scenario with a message after 1s and another 2s later.
func twoSteps(second time.Duration) map[string]any {
	return map[string]any{
		"name":  "Welcome",
		"start": map[string]any{"type": "follow"},
		"nodes": []any{
			map[string]any{"id": "wait-1", "type": "wait", "wait": map[string]any{"after": "1s"}, "next": "welcome"},
			map[string]any{"id": "welcome", "type": "message", "message": map[string]any{"messages": []any{text("Welcome, {{displayName}}!")}}, "next": "wait-2"},
			map[string]any{"id": "wait-2", "type": "wait", "wait": map[string]any{"after": second.String(), "from": "previous"}, "next": "coupon"},
			map[string]any{"id": "coupon", "type": "message", "message": map[string]any{"messages": []any{text("Your coupon: STEP10"), map[string]any{"type": "sticker", "packageId": "446", "stickerId": "1988"}}}},
		},
	}
}

func pushTexts(ps []fakeline.Push) []string {
	var out []string
	for _, p := range ps {
		for _, m := range p.Messages {
			var v struct{ Type, Text string }
			_ = json.Unmarshal(m, &v)
			out = append(out, v.Type+":"+v.Text)
		}
	}
	return out
}

func TestFollowRunsScenarioEndToEnd(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	scID := s.publish(ch, "welcome", twoSteps(2*time.Second))
	user := testenv.UserID()
	s.line.SetProfile(user, `Aiko "A" Tanaka`)

	start := time.Now()
	if code := s.event(ch, "follow", user); code != http.StatusOK {
		t.Fatalf("follow webhook answered %d", code)
	}
	waitFor(t, 30*time.Second, "two pushes", func() bool { return len(s.line.PushesTo(user)) == 2 })
	pushes := s.line.PushesTo(user)
	got := pushTexts(pushes)
	want := []string{`text:Welcome, Aiko "A" Tanaka!`, "text:Your coupon: STEP10", "sticker:"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("messages sent = %q, want %q", got, want)
	}
	if d := pushes[0].At.Sub(start); d < time.Second {
		t.Errorf("first step sent %s after the follow, before its 1s wait", d)
	}
	if d := pushes[1].At.Sub(pushes[0].At); d < 2*time.Second {
		t.Errorf("second step sent %s after the first, before its 2s wait", d)
	}
	if pushes[0].RetryKey == pushes[1].RetryKey || pushes[0].RetryKey == "" {
		t.Errorf("retry keys must be set and differ per step: %q, %q", pushes[0].RetryKey, pushes[1].RetryKey)
	}
	if pushes[0].ChannelToken != "e2e-token" {
		t.Errorf("push used token %q, want the channel's", pushes[0].ChannelToken)
	}

	waitFor(t, 10*time.Second, "the enrollment to complete", func() bool {
		es := s.enrollments(ch)
		return len(es) == 1 && es[0].Status == "completed"
	})
	e := s.enrollments(ch)[0]
	if e.ScenarioID != scID || e.WorkflowID != workflows.EnrollmentWorkflowID(ch, "welcome", user) {
		t.Errorf("enrollment = %+v", e)
	}
	ds := s.deliveries(ch)
	if len(ds) != 2 || ds[0].Status != "sent" || ds[1].Status != "sent" {
		t.Errorf("deliveries = %+v, want two sent", ds)
	}

	// Metrics: the API counts webhooks and enrollments, the worker sends;
	// both report the Temporal SDK's own metrics.
	apiMetrics := s.get(s.url + "/metrics")
	workerMetrics := s.get("http://" + s.env["STEPCAST_WORKER_HTTP_ADDR"] + "/metrics")
	for _, want := range []string{`stepcast_webhook_events_received_total{type="follow"} 1`,
		`stepcast_enrollments_started_total{scenario="welcome"} 1`, "stepcast_webhook_inbox_backlog 0", "temporal_request_total{"} {
		if !strings.Contains(apiMetrics, want) {
			t.Errorf("API /metrics lacks %s", want)
		}
	}
	for _, want := range []string{`stepcast_sends_total{outcome="sent"} 2`, "temporal_local_activity_execution_latency"} {
		if !strings.Contains(workerMetrics, want) {
			t.Errorf("worker /metrics lacks %s", want)
		}
	}

	// The Temporal Web UI finds the journey by friend and scenario.
	waitFor(t, 10*time.Second, "the workflow in visibility", func() bool {
		res, err := s.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("StepcastFriend = %q AND StepcastScenario = 'welcome' AND StepcastNode = 'wait-2'", user),
		})
		return err == nil && len(res.Executions) == 1 && res.Executions[0].Execution.WorkflowId == e.WorkflowID
	})
}

func TestStateQueryShowsNextDueTime(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.publish(ch, "slow", map[string]any{
		"name": "Slow", "start": map[string]any{"type": "follow"},
		"nodes": []any{
			map[string]any{"id": "day-3", "type": "wait", "wait": map[string]any{"days": 3, "at": "10:00"}, "next": "hello"},
			map[string]any{"id": "hello", "type": "message", "message": map[string]any{"messages": []any{text("hi")}}},
		},
	})
	user := testenv.UserID()
	s.event(ch, "follow", user)
	wid := workflows.EnrollmentWorkflowID(ch, "slow", user)
	var st workflows.State
	waitFor(t, 20*time.Second, "the state query", func() bool {
		v, err := s.temporal.QueryWorkflow(context.Background(), wid, "", workflows.QueryState)
		return err == nil && v.Get(&st) == nil && st.NextDueAt != nil
	})
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	enrolled := st.EnrolledAt.In(tokyo)
	want := time.Date(enrolled.Year(), enrolled.Month(), enrolled.Day()+3, 10, 0, 0, 0, tokyo)
	if st.Status != workflows.StatusWaiting || st.Node != "day-3" || !st.NextDueAt.Equal(want) {
		t.Fatalf("state = %+v, want waiting at day-3 until %s", st, want)
	}
}

func TestBlockStopsLaterSteps(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.publish(ch, "welcome", twoSteps(4*time.Second))
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 30*time.Second, "the first push", func() bool { return len(s.line.PushesTo(user)) == 1 })
	if code := s.event(ch, "unfollow", user); code != http.StatusOK {
		t.Fatalf("unfollow answered %d", code)
	}
	waitFor(t, 20*time.Second, "the enrollment to exit", func() bool {
		es := s.enrollments(ch)
		return len(es) == 1 && es[0].Status == "exited" && es[0].ExitReason == "blocked"
	})
	time.Sleep(5 * time.Second) // past the second step's due time
	if n := len(s.line.PushesTo(user)); n != 1 {
		t.Fatalf("%d pushes to a friend who blocked after the first step, want 1", n)
	}
	var friends struct {
		Items []struct{ UserID, Status string }
	}
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/friends", ch), nil, &friends)
	if len(friends.Items) != 1 || friends.Items[0].Status != "blocked" {
		t.Fatalf("friends = %+v, want one blocked", friends.Items)
	}
}

func TestDuplicateAndConcurrentFollowsEnrollOnce(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.publish(ch, "welcome", twoSteps(time.Second))
	user := testenv.UserID()

	// The same event redelivered, and distinct follow events, all at once.
	same := fakeline.WebhookBody("follow", user, time.Now())
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := same
			if i%2 == 1 {
				body = fakeline.WebhookBody("follow", user, time.Now())
			}
			if code := s.webhook(ch, body); code != http.StatusOK {
				t.Errorf("webhook %d answered %d", i, code)
			}
		}()
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "two pushes", func() bool { return len(s.line.PushesTo(user)) >= 2 })
	time.Sleep(3 * time.Second)
	if n := len(s.line.PushesTo(user)); n != 2 {
		t.Fatalf("%d pushes, want 2 (one enrollment)", n)
	}
	if es := s.enrollments(ch); len(es) != 1 {
		t.Fatalf("%d enrollments, want 1: %+v", len(es), es)
	}
}

func TestRetriedSendDoesNotSendTwice(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	s.publish(ch, "welcome", twoSteps(time.Second))
	user := testenv.UserID()
	// LINE fails the first two attempts; the workflow tries the step again.
	s.line.InjectFault(fakeline.Fault{Status: http.StatusInternalServerError, Count: 2})
	s.event(ch, "follow", user)
	waitFor(t, 60*time.Second, "two pushes", func() bool { return len(s.line.PushesTo(user)) == 2 })
	time.Sleep(2 * time.Second)
	if n := len(s.line.PushesTo(user)); n != 2 {
		t.Fatalf("%d pushes, want exactly 2", n)
	}
	ds := s.deliveries(ch)
	attempts := 0
	for _, d := range ds {
		attempts += d.Attempts
		if d.Status != "sent" {
			t.Errorf("delivery %+v not sent", d)
		}
	}
	if attempts != 4 {
		t.Errorf("delivery attempts = %d, want 4 (2 failed + 2 sent)", attempts)
	}
}

func TestEmbeddedDatabasePath(t *testing.T) {
	s := startSystem(t, withSQLite(t))
	ch := s.createChannel()
	s.publish(ch, "welcome", twoSteps(time.Second))
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 30*time.Second, "two pushes on the embedded database", func() bool { return len(s.line.PushesTo(user)) == 2 })
	waitFor(t, 10*time.Second, "the enrollment to complete", func() bool {
		es := s.enrollments(ch)
		return len(es) == 1 && es[0].Status == "completed"
	})
}
