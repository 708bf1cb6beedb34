package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/apiserver"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/preview"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// loadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(apiserver.OpenAPIDocument)
	require.NoError(t, err, "openapi.yaml does not load")
	require.NoError(t, doc.Validate(context.Background()), "openapi.yaml is not a valid OpenAPI 3 document")
	require.Equal(t, "3.0.3", doc.OpenAPI)
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	require.NotNil(t, doc.Components)
	scheme, ok := doc.Components.SecuritySchemes["bearerAuth"]
	require.True(t, ok, "components.securitySchemes.bearerAuth is missing")
	require.NotNil(t, scheme.Value)
	assert.Equal(t, "http", scheme.Value.Type)
	assert.Equal(t, "bearer", scheme.Value.Scheme)
	require.Len(t, doc.Security, 1, "bearer auth must apply globally")
	_, ok = doc.Security[0]["bearerAuth"]
	assert.True(t, ok, "bearer auth must apply globally")

	for _, name := range []string{"ErrorBody", "Document", "Start", "Node", "Wait", "Condition", "EventCond", "Compare", "Period", "ExitRules"} {
		assert.Contains(t, doc.Components.Schemas, name, "schema %s is missing", name)
	}
}

var ginParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// mustDocument reports whether a route must be in the document: everything
// under /api/ and /webhooks/ is.
func mustDocument(path string) bool {
	return strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/webhooks/")
}

// The document and the router name the same operations: a route missing
// from the document fails, and so does a documented operation that no route
// serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	srv := apiserver.New(apiserver.Config{AdminToken: "t"}, apiserver.Deps{Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := srv.Handler()

	routes := map[string]bool{}
	var admin int
	for _, r := range h.Routes() {
		key := r.Method + " " + ginParam.ReplaceAllString(r.Path, "{$1}")
		routes[key] = true
		if !mustDocument(r.Path) {
			continue
		}
		admin++
		path := ginParam.ReplaceAllString(r.Path, "{$1}")
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not in openapi.yaml (as %s %s)", r.Method, r.Path, r.Method, path)
		}
	}
	require.Greater(t, admin, 10, "found only %d routes to document; the walk is broken", admin)

	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(documented)
	for _, op := range documented {
		if !routes[op] {
			t.Errorf("openapi.yaml documents %s, which no route serves", op)
		}
	}
}

// Path parameters of the document are the router's: each {name} in a path
// is declared as a path parameter, and nothing else is.
func TestOpenAPIPathParameters(t *testing.T) {
	doc := loadOpenAPI(t)
	braces := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths.Map() {
		var want []string
		for _, m := range braces.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		sort.Strings(want)
		for method, op := range item.Operations() {
			var got []string
			for _, p := range append(append(openapi3.Parameters{}, item.Parameters...), op.Parameters...) {
				if p.Value != nil && p.Value.In == openapi3.ParameterInPath {
					got = append(got, p.Value.Name)
				}
			}
			sort.Strings(got)
			assert.Equal(t, want, got, "path parameters of %s %s", method, path)
		}
	}
}

// Every operation says what it does and how it succeeds; admin operations
// say how they answer a missing token, and their errors are ErrorBody.
func TestOpenAPIOperationsAreDescribed(t *testing.T) {
	doc := loadOpenAPI(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			assert.NotEmpty(t, strings.TrimSpace(op.Summary), "%s has no summary", name)
			require.NotNil(t, op.Responses, "%s has no responses", name)
			ok := false
			for code := range op.Responses.Map() {
				// A redirect is the success of a tracked link.
				if len(code) == 3 && (code[0] == '2' || code == "302") {
					ok = true
				}
			}
			assert.True(t, ok, "%s has no 2xx (or redirect) response", name)

			admin := strings.HasPrefix(path, "/api/")
			if admin {
				assert.NotNil(t, op.Responses.Value("401"), "%s has no 401 response", name)
				assert.True(t, op.Security == nil, "%s overrides the global bearer auth", name)
			} else {
				require.NotNil(t, op.Security, "%s must say it needs no bearer token (security: [])", name)
				assert.Empty(t, *op.Security, "%s must say it needs no bearer token (security: [])", name)
			}
			for code, resp := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' || !(admin || strings.HasPrefix(path, "/webhooks/")) {
					continue
				}
				require.NotNil(t, resp.Value, "%s %s", name, code)
				mt := resp.Value.Content.Get("application/json")
				require.NotNil(t, mt, "%s %s has no JSON body", name, code)
				assert.Equal(t, "#/components/schemas/ErrorBody", mt.Schema.Ref, "%s %s is not an ErrorBody", name, code)
			}
		}
	}
}

func TestOpenAPIServedWithoutAuth(t *testing.T) {
	srv := apiserver.New(apiserver.Config{AdminToken: "t"}, apiserver.Deps{Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, apiserver.OpenAPIDocument, rec.Body.Bytes())
	assert.NotEmpty(t, apiserver.OpenAPIDocument)
}

// checkKeys fails for every object key in v that schema does not declare,
// and for every required key that v lacks, so a JSON name in the document
// that differs from the Go type's shows up.
func checkKeys(t *testing.T, where string, schema *openapi3.Schema, v any) {
	t.Helper()
	if schema == nil {
		return
	}
	props := map[string]*openapi3.Schema{}
	var required []string
	var extra *openapi3.Schema
	open := false
	var collect func(s *openapi3.Schema)
	collect = func(s *openapi3.Schema) {
		for name, p := range s.Properties {
			props[name] = p.Value
		}
		required = append(required, s.Required...)
		if s.AdditionalProperties.Schema != nil {
			extra = s.AdditionalProperties.Schema.Value
		}
		if s.AdditionalProperties.Has != nil && *s.AdditionalProperties.Has {
			open = true
		}
		for _, sub := range s.AllOf {
			collect(sub.Value)
		}
	}
	collect(schema)
	switch x := v.(type) {
	case map[string]any:
		for _, r := range required {
			if _, ok := x[r]; !ok {
				t.Errorf("%s: required %q is not in the JSON", where, r)
			}
		}
		for k, e := range x {
			switch {
			case props[k] != nil:
				checkKeys(t, where+"."+k, props[k], e)
			case extra != nil:
				checkKeys(t, where+"."+k, extra, e)
			case !open:
				t.Errorf("%s: JSON key %q is not in the schema", where, k)
			}
		}
	case []any:
		if schema.Items != nil {
			for i, e := range x {
				checkKeys(t, fmt.Sprintf("%s[%d]", where, i), schema.Items.Value, e)
			}
		}
	}
}

// The schemas name the JSON fields the Go types encode: populated values of
// the API's types are valid against their schema and use no undeclared key.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	docJSON := `{
	  "name": "Welcome", "timezone": "Asia/Tokyo", "entry": "day1",
	  "start": {"type": "follow", "routes": ["store-qr"], "reentry": "after_exit"},
	  "period": {"from": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
	  "exit": {"events": [{"type": "purchase", "within": "72h"}], "audience": "buyers"},
	  "nodes": [
	    {"id": "day1", "type": "wait", "wait": {"days": 1, "at": "10:00", "from": "previous"}, "next": "hello"},
	    {"id": "hello", "type": "message", "message": {"messages": [{"type": "text", "text": "Hi {{displayName}}"}]}, "next": "b"},
	    {"id": "b", "type": "branch", "branch": {"cases": [
	      {"when": {"all": [{"attribute": {"key": "age", "op": "between", "min": 20, "max": 39}}, {"not": {"tag": "vip"}}]}, "next": "s"},
	      {"when": {"any": [{"route": ["ad"]}, {"audience": "buyers"}, {"event": {"type": "click", "node": "hello", "name": "n", "props": [{"key": "url", "op": "in", "values": ["a", "b"]}]}}]}, "next": "we"}
	    ], "default": "x"}},
	    {"id": "s", "type": "split", "split": {"paths": [{"weight": 1, "next": "t"}, {"weight": 3, "next": "x"}]}},
	    {"id": "we", "type": "wait_event", "waitEvent": {"event": {"type": "purchase"}, "timeout": {"after": "36h"}, "onEvent": "t", "onTimeout": "x"}},
	    {"id": "t", "type": "tag", "tag": {"add": ["a"], "remove": ["b"]}, "next": "x"},
	    {"id": "x", "type": "exit"}
	  ]
	}`
	sdoc, err := scenario.Parse([]byte(docJSON))
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rule := &scenario.Condition{Attribute: &scenario.AttributeCond{Key: "region", Compare: scenario.Compare{Op: "eq", Value: "tokyo"}}}
	enr := apiserver.Enrollment{ID: 1, ScenarioID: 2, ScenarioVersion: 3, FriendID: 4, WorkflowID: "enrollment/1/welcome/U1", RunID: "r",
		Status: "exited", ExitReason: "blocked", StartedAt: now, EndedAt: &now}
	state := workflows.State{Status: "waiting", Node: "day1", NextDueAt: &now, EnrolledAt: now, Version: 1, StepsSent: 2,
		ExitReason: "x", HeldReason: "scenario paused", Path: []workflows.Visit{{Node: "day1", At: now, Outcome: "sent"}}}
	friend := apiserver.Friend{ID: 1, UserID: "U1", Status: "blocked", DisplayName: "D", AddRoute: "qr", FirstFollowedAt: now, LastFollowedAt: now, BlockedAt: &now}
	version := apiserver.Version{ScenarioID: 1, Version: 2, PublishedAt: now}

	for name, v := range map[string]any{
		"Document":        sdoc,
		"Channel":         apiserver.Channel{ID: 1, Name: "n", LineChannelID: "1", TimeZone: "Asia/Tokyo", MonthlyBudget: 5, WebhookPath: "/webhooks/line/1", CreatedAt: now},
		"ChannelList":     apiserver.List[apiserver.Channel]{Items: []apiserver.Channel{{CreatedAt: now}}},
		"ChannelRequest":  apiserver.ChannelRequest{Name: "n", LineChannelID: "1", ChannelSecret: "s", AccessToken: "a", TimeZone: "UTC", MonthlyBudget: 1},
		"ScenarioRequest": apiserver.ScenarioRequest{Key: "welcome", Document: json.RawMessage(docJSON)},
		"Scenario":        apiserver.Scenario{ID: 1, ChannelID: 1, Key: "k", Name: "n", Status: "active", Version: 1, Draft: *sdoc, CreatedAt: now, UpdatedAt: now},
		"Version":         version,
		"VersionList":     apiserver.List[apiserver.Version]{Items: []apiserver.Version{version}},
		"VersionDocument": apiserver.VersionDocument{Version: version, Document: *sdoc},
		"PreviewRequest": apiserver.PreviewRequest{Start: &now, Version: 1, Friend: preview.Friend{UserID: "U1", DisplayName: "D",
			Attributes: map[string]string{"age": "30"}, Route: "qr", Tags: []string{"a"}, Audiences: map[string]bool{"buyers": true},
			Events: []preview.Event{{Type: "purchase", Name: "n", Node: "hello", Props: map[string]string{"amount": "1"}, After: "1h", At: &now}}}},
		"Timeline": preview.Timeline{Sends: []preview.Send{{Node: "hello", At: now, Messages: []json.RawMessage{json.RawMessage(`{"type":"text","text":"Hi"}`)}}},
			Path: state.Path, End: state},
		"TestSendRequest": apiserver.TestSendRequest{Node: "hello", UserID: "U1"},
		"FriendList":      apiserver.List[apiserver.Friend]{Items: []apiserver.Friend{friend}},
		"FriendDetail":    apiserver.FriendDetail{Friend: friend, Attributes: map[string]string{"a": "b"}, Tags: []string{"t"}, Enrollments: []apiserver.Enrollment{enr}},
		"TagsRequest":     apiserver.TagsRequest{Add: []string{"a"}, Remove: []string{"b"}},
		"EventRequest":    apiserver.EventRequest{UserID: "U1", Type: "purchase", Name: "n", Props: map[string]string{"amount": "1"}, At: &now},
		"AudienceRequest": apiserver.AudienceRequest{Key: "k", Name: "n", Kind: "rule", Rule: rule, UserIDs: []string{"U0123456789abcdef0123456789abcdef"}},
		"AudienceList":    apiserver.List[apiserver.Audience]{Items: []apiserver.Audience{{ID: 1, Key: "k", Name: "n", Kind: "rule", Rule: rule}}},
		"EnrollmentList":  apiserver.List[apiserver.Enrollment]{Items: []apiserver.Enrollment{enr}},
		"EnrollmentState": apiserver.EnrollmentState{Enrollment: enr, State: &state},
		"DeliveryList": apiserver.List[apiserver.Delivery]{Items: []apiserver.Delivery{{ID: 1, ScenarioID: 1, FriendID: 1, WorkflowID: "w", NodeID: "n",
			RetryKey: "k", Status: "sent", MessageCount: 1, Attempts: 1, Error: "e", LineRequestID: "l", SentAt: &now, CreatedAt: now}}},
		"ErrorBody": apiserver.ErrorBody{Error: apiserver.ErrorDetail{Code: "invalid", Message: "m",
			Problems: []stepcast.Problem{{Path: "nodes[0]", Message: "m"}}}},
	} {
		ref, ok := doc.Components.Schemas[name]
		require.True(t, ok, "schema %s is missing", name)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		var decoded any
		require.NoError(t, json.Unmarshal(b, &decoded))
		assert.NoError(t, ref.Value.VisitJSON(decoded), "%s: %s", name, b)
		checkKeys(t, name, ref.Value, decoded)
	}
}
