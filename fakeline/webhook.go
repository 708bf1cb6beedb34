package fakeline

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"
)

// The other way round: what LINE sends to a bot. The CLI's `stepcast
// webhook`, the end-to-end tests and the benchmark play LINE with these.

// WebhookBody is a LINE webhook request with one event of kind ("follow",
// "unfollow", ...) from userID, as LINE sends it.
func WebhookBody(kind, userID string, at time.Time) []byte {
	ev := map[string]any{
		"type":            kind,
		"mode":            "active",
		"timestamp":       at.UnixMilli(),
		"source":          map[string]any{"type": "user", "userId": userID},
		"webhookEventId":  "01" + randomHex(12),
		"deliveryContext": map[string]any{"isRedelivery": false},
	}
	if kind == "follow" {
		ev["replyToken"] = randomHex(16)
		ev["follow"] = map[string]any{"isUnblocked": false}
	}
	b, _ := json.Marshal(map[string]any{"destination": "U" + randomHex(16), "events": []any{ev}})
	return b
}

// Sign computes X-Line-Signature: base64 of HMAC-SHA256 of the body keyed by
// the channel secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
