package apiserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/inbox"
	"github.com/stepcast/stepcast/models"
)

// lineWebhook takes LINE's events into the durable inbox and answers at
// once; the dispatcher applies them. Any failure to store answers 5xx so
// that LINE redelivers; bad requests answer 4xx and store nothing.
func (s *Server) lineWebhook(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := strconv.ParseUint(c.Param("channelID"), 10, 64)
	if err != nil {
		s.fail(c, stepcast.Errorf(stepcast.ENOTFOUND, "channel %q not found", c.Param("channelID")))
		return
	}
	secret, cached, err := s.webhookSecrets.get(ctx, s.store, uint(id), false)
	if err != nil {
		s.fail(c, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxWebhookBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(c, stepcast.Errorf(stepcast.ETOOLARGE, "webhook body is over %d bytes", s.cfg.MaxWebhookBytes))
			return
		}
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "cannot read webhook body: %v", err))
		return
	}
	sig := c.GetHeader("X-Line-Signature")
	if sig == "" {
		s.fail(c, stepcast.Errorf(stepcast.EUNAUTHORIZED, "missing x-line-signature header"))
		return
	}
	valid := webhook.ValidateSignature(secret, sig, body)
	if !valid && cached {
		// The secret may have changed since it was cached.
		if secret, _, err = s.webhookSecrets.get(ctx, s.store, uint(id), true); err != nil {
			s.fail(c, err)
			return
		}
		valid = webhook.ValidateSignature(secret, sig, body)
	}
	if !valid {
		s.fail(c, stepcast.Errorf(stepcast.EUNAUTHORIZED, "x-line-signature does not match the body and the channel secret"))
		return
	}
	events, err := inbox.Decode(uint(id), body, time.Now())
	if err != nil {
		s.fail(c, err)
		return
	}
	stored, err := s.store.InsertWebhookEvents(ctx, events)
	if err != nil {
		s.fail(c, stepcast.Errorf(stepcast.EUNAVAILABLE, "webhook events could not be stored; LINE will redeliver: %v", err))
		return
	}
	if s.metrics != nil {
		for _, ev := range events {
			s.metrics.WebhookEvents.WithLabelValues(ev.Type).Inc()
		}
		s.metrics.WebhookDuplicates.Add(float64(len(events) - stored))
	}
	if stored > 0 {
		s.notify()
	}
	c.JSON(http.StatusOK, gin.H{})
}

// secretTTL is how long a channel's secret is used from memory. A webhook
// signed with a new secret re-reads it at once; one signed with the secret
// it replaced is accepted for at most this long.
const secretTTL = 5 * time.Second

// secretCache keeps the channels' secrets that webhooks are checked
// against: a busy channel's webhook would otherwise read the same row for
// each of hundreds of requests a second, a second database round trip
// beside the insert of its events.
type secretCache struct {
	mu      sync.Mutex
	secrets map[uint]cachedSecret
}

type cachedSecret struct {
	secret string
	until  time.Time
}

// get returns the channel's secret and whether it came from memory;
// reload skips the memory.
func (c *secretCache) get(ctx context.Context, store *models.Store, channelID uint, reload bool) (string, bool, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.secrets[channelID]
	c.mu.Unlock()
	if ok && !reload && now.Before(e.until) {
		return e.secret, true, nil
	}
	ch, err := store.Channel(ctx, channelID)
	if err != nil {
		return "", false, err
	}
	c.mu.Lock()
	if c.secrets == nil {
		c.secrets = map[uint]cachedSecret{}
	}
	c.secrets[channelID] = cachedSecret{secret: ch.Secret, until: now.Add(secretTTL)}
	c.mu.Unlock()
	return ch.Secret, false, nil
}
