package apiserver

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// ChannelRequest creates a channel.
type ChannelRequest struct {
	Name          string `json:"name"`
	LineChannelID string `json:"lineChannelId"`
	ChannelSecret string `json:"channelSecret"`
	AccessToken   string `json:"accessToken"`
	TimeZone      string `json:"timeZone"`
	MonthlyBudget int64  `json:"monthlyBudget"`
}

func (r *ChannelRequest) validate() error {
	var ps []stepcast.Problem
	need := func(field, v string) {
		if v == "" {
			ps = append(ps, stepcast.Problem{Path: field, Message: "is required"})
		}
	}
	need("name", r.Name)
	need("lineChannelId", r.LineChannelID)
	need("channelSecret", r.ChannelSecret)
	need("accessToken", r.AccessToken)
	if r.TimeZone != "" {
		if _, err := time.LoadLocation(r.TimeZone); err != nil {
			ps = append(ps, stepcast.Problem{Path: "timeZone", Message: fmt.Sprintf("%q is not a known IANA time zone", r.TimeZone)})
		}
	}
	if r.MonthlyBudget < 0 {
		ps = append(ps, stepcast.Problem{Path: "monthlyBudget", Message: "must not be negative"})
	}
	if len(ps) > 0 {
		return &stepcast.Error{Code: stepcast.EINVALID, Message: "channel is not valid", Problems: ps}
	}
	return nil
}

// Channel is a channel as the API shows it; secrets are never shown.
type Channel struct {
	ID            uint      `json:"id"`
	Name          string    `json:"name"`
	LineChannelID string    `json:"lineChannelId"`
	TimeZone      string    `json:"timeZone"`
	MonthlyBudget int64     `json:"monthlyBudget"`
	WebhookPath   string    `json:"webhookPath"`
	CreatedAt     time.Time `json:"createdAt"`
}

func toChannel(c *models.Channel) Channel {
	return Channel{ID: c.ID, Name: c.Name, LineChannelID: c.LineChannelID, TimeZone: c.TimeZone,
		MonthlyBudget: c.MonthlyBudget, WebhookPath: fmt.Sprintf("/webhooks/line/%d", c.ID), CreatedAt: c.CreatedAt}
}

func (s *Server) createChannel(c *gin.Context) {
	var req ChannelRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := req.validate(); err != nil {
		s.fail(c, err)
		return
	}
	if req.TimeZone == "" {
		req.TimeZone = scenario.DefaultTimeZone
	}
	ch := models.Channel{Name: req.Name, LineChannelID: req.LineChannelID, Secret: req.ChannelSecret,
		AccessToken: req.AccessToken, TimeZone: req.TimeZone, MonthlyBudget: req.MonthlyBudget}
	if err := s.store.CreateChannel(c.Request.Context(), &ch); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, toChannel(&ch))
}

func (s *Server) listChannels(c *gin.Context) {
	p, err := page(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	chs, err := s.store.Channels(c.Request.Context(), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(chs, toChannel))
}

// channel loads the channel named in the path.
func (s *Server) channel(c *gin.Context) (*models.Channel, error) {
	id, err := idParam(c, "channelID", "channel")
	if err != nil {
		return nil, err
	}
	return s.store.Channel(c.Request.Context(), id)
}

func (s *Server) getChannel(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toChannel(ch))
}
