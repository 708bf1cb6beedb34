package apiserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"github.com/stepcast/stepcast/apiserver"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

// A channel's webhooks read its secret once, not once per request; a
// webhook signed with a secret changed since (in the database, by another
// replica or by hand) is checked against the new one at once, and the old
// one is then refused.
func TestWebhookSecretReadOnceAndChanged(t *testing.T) {
	store := testenv.SQLite(t)
	ch := &models.Channel{Name: "shop", LineChannelID: "1650000001", Secret: "old-secret",
		AccessToken: "token", TimeZone: "Asia/Tokyo"}
	if err := store.CreateChannel(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	err := store.DB.Callback().Query().Before("gorm:query").Register("test:channel-reads", func(db *gorm.DB) {
		if db.Statement.Table == "channels" {
			reads.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	h := apiserver.New(apiserver.Config{AdminToken: "t"}, apiserver.Deps{
		Store: store, Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}).Handler()
	n := 0
	post := func(secret string) int {
		t.Helper()
		n++
		body := []byte(fmt.Sprintf(`{"destination":"U0","events":[{"type":"follow","mode":"active","timestamp":1462629479859,`+
			`"source":{"type":"user","userId":"U%031x"},"webhookEventId":"ev-%d","deliveryContext":{"isRedelivery":false},`+
			`"replyToken":"r","follow":{"isUnblocked":false}}]}`, n, n))
		req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/webhooks/line/%d", ch.ID), bytes.NewReader(body))
		req.Header.Set("X-Line-Signature", fuzzLineSignature(secret, body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}

	for range 3 {
		if code := post("old-secret"); code != http.StatusOK {
			t.Fatalf("webhook answered %d, want 200", code)
		}
	}
	if got := reads.Load(); got != 1 {
		t.Fatalf("three webhooks read the channel %d times, want once", got)
	}

	if err := store.DB.Model(&models.Channel{}).Where("id = ?", ch.ID).Update("secret", "new-secret").Error; err != nil {
		t.Fatal(err)
	}
	if code := post("new-secret"); code != http.StatusOK {
		t.Fatalf("webhook signed with the new secret answered %d, want 200", code)
	}
	if code := post("old-secret"); code != http.StatusUnauthorized {
		t.Fatalf("webhook signed with the replaced secret answered %d, want 401", code)
	}
}
