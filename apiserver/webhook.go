package apiserver

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/inbox"
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
	ch, err := s.store.Channel(ctx, uint(id))
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
	if !webhook.ValidateSignature(ch.Secret, sig, body) {
		s.fail(c, stepcast.Errorf(stepcast.EUNAUTHORIZED, "x-line-signature does not match the body and the channel secret"))
		return
	}
	events, err := inbox.Decode(ch.ID, body, time.Now())
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
