package apiserver_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stepcast/stepcast/apiserver"
	"github.com/stepcast/stepcast/metrics"
)

// Every admin route refuses requests without the right bearer token; the
// test walks the router, so a route added later is covered too.
func TestEveryAdminRouteRequiresToken(t *testing.T) {
	srv := apiserver.New(apiserver.Config{AdminToken: "s3cret"}, apiserver.Deps{Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := srv.Handler()
	admin := 0
	for _, r := range h.Routes() {
		if !strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		admin++
		path := strings.NewReplacer(":channelID", "1", ":scenarioID", "1").Replace(r.Path)
		for name, header := range map[string]string{"no token": "", "wrong token": "Bearer nope", "not bearer": "Basic czNjcmV0"} {
			req := httptest.NewRequest(r.Method, path, strings.NewReader("{}"))
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s with %s: %d, want 401", r.Method, r.Path, name, rec.Code)
			}
			if !strings.Contains(rec.Body.String(), `"code":"unauthorized"`) {
				t.Errorf("%s %s with %s: body %s does not say unauthorized", r.Method, r.Path, name, rec.Body)
			}
		}
	}
	if admin < 10 {
		t.Fatalf("found only %d admin routes; the walk is broken", admin)
	}
}

func TestEmptyAdminTokenRefusesEverything(t *testing.T) {
	srv := apiserver.New(apiserver.Config{}, apiserver.Deps{Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	req := httptest.NewRequest("GET", "/api/v1/channels", nil)
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("%d, want 401", rec.Code)
	}
}
