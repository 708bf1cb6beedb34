package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
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
	// AddFriendURL is the account's add-friend link, where tracked
	// add-route links send people.
	AddFriendURL string `json:"addFriendUrl"`
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
	if r.AddFriendURL != "" && !strings.HasPrefix(r.AddFriendURL, "https://") {
		ps = append(ps, stepcast.Problem{Path: "addFriendUrl", Message: "must be an https URL such as https://line.me/R/ti/p/@yourid"})
	}
	if len(ps) > 0 {
		return &stepcast.Error{Code: stepcast.EINVALID, Message: "channel is not valid", Problems: ps}
	}
	return nil
}

// Channel is a channel as the API shows it; secrets are never shown.
type Channel struct {
	ID            uint        `json:"id"`
	Name          string      `json:"name"`
	LineChannelID string      `json:"lineChannelId"`
	TimeZone      string      `json:"timeZone"`
	MonthlyBudget int64       `json:"monthlyBudget"`
	AddFriendURL  string      `json:"addFriendUrl,omitempty"`
	QuietHours    *QuietHours `json:"quietHours,omitempty"`
	FrequencyCap  int         `json:"frequencyCap"`
	RateLimit     int         `json:"rateLimit"`
	// LineQuotaMonth is set when LINE said the monthly limit was reached
	// in that month; steps hold until the month turns or it is cleared.
	LineQuotaMonth string    `json:"lineQuotaMonth,omitempty"`
	WebhookPath    string    `json:"webhookPath"`
	CreatedAt      time.Time `json:"createdAt"`
}

// ChannelCreated is a new channel with its events key, shown this once.
type ChannelCreated struct {
	Channel
	// EventsKey authenticates web events (X-Stepcast-Key); only its hash
	// is kept.
	EventsKey string `json:"eventsKey"`
}

// QuietHours are "HH:MM" clock times in the channel's time zone; they may
// span midnight.
type QuietHours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

func toChannel(c *models.Channel) Channel {
	out := Channel{ID: c.ID, Name: c.Name, LineChannelID: c.LineChannelID, TimeZone: c.TimeZone,
		MonthlyBudget: c.MonthlyBudget, AddFriendURL: c.AddFriendURL, FrequencyCap: c.FrequencyCap, RateLimit: c.RateLimit, LineQuotaMonth: c.LineQuotaMonth,
		WebhookPath: fmt.Sprintf("/webhooks/line/%d", c.ID), CreatedAt: c.CreatedAt}
	if out.RateLimit == 0 {
		out.RateLimit = models.LinePushRateLimit
	}
	if c.QuietStart != "" {
		out.QuietHours = &QuietHours{Start: c.QuietStart, End: c.QuietEnd}
	}
	return out
}

// ChannelPatch changes a channel's settings; absent fields stay as they
// are. quietHours null removes them.
type ChannelPatch struct {
	Name           *string         `json:"name"`
	AccessToken    *string         `json:"accessToken"`
	AddFriendURL   *string         `json:"addFriendUrl"`
	MonthlyBudget  *int64          `json:"monthlyBudget"`
	QuietHours     quietHoursPatch `json:"quietHours"`
	FrequencyCap   *int            `json:"frequencyCap"`
	RateLimit      *int            `json:"rateLimit"`
	ClearLineQuota bool            `json:"clearLineQuota"`
}

// quietHoursPatch tells an absent quietHours (no change) from null
// (remove them).
type quietHoursPatch struct {
	Set   bool
	Value *QuietHours
}

func (q *quietHoursPatch) UnmarshalJSON(b []byte) error {
	q.Set = true
	return json.Unmarshal(b, &q.Value)
}

// updateChannel changes delivery settings and tells running enrollments,
// so steps held for the budget go as soon as it is raised.
func (s *Server) updateChannel(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req ChannelPatch
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	p := models.ChannelPatch{Name: req.Name, AccessToken: req.AccessToken, AddFriendURL: req.AddFriendURL, MonthlyBudget: req.MonthlyBudget,
		FrequencyCap: req.FrequencyCap, RateLimit: req.RateLimit, ClearLineQuota: req.ClearLineQuota}
	var ps []stepcast.Problem
	bad := func(path, msg string) { ps = append(ps, stepcast.Problem{Path: path, Message: msg}) }
	if req.Name != nil && *req.Name == "" {
		bad("name", "must not be empty")
	}
	if req.AccessToken != nil && *req.AccessToken == "" {
		bad("accessToken", "must not be empty")
	}
	if req.AddFriendURL != nil && *req.AddFriendURL != "" && !strings.HasPrefix(*req.AddFriendURL, "https://") {
		bad("addFriendUrl", "must be an https URL such as https://line.me/R/ti/p/@yourid")
	}
	if req.MonthlyBudget != nil && *req.MonthlyBudget < 0 {
		bad("monthlyBudget", "must not be negative")
	}
	if req.FrequencyCap != nil && *req.FrequencyCap < 0 {
		bad("frequencyCap", "must not be negative")
	}
	if req.RateLimit != nil && (*req.RateLimit < 0 || *req.RateLimit > models.LinePushRateLimit) {
		bad("rateLimit", fmt.Sprintf("must be 0 to %d pushes a second", models.LinePushRateLimit))
	}
	if req.QuietHours.Set {
		start, end := "", ""
		if q := req.QuietHours.Value; q != nil {
			start, end = q.Start, q.End
			if _, _, err := scenario.ParseClock(q.Start); err != nil {
				bad("quietHours.start", err.Error())
			}
			if _, _, err := scenario.ParseClock(q.End); err != nil {
				bad("quietHours.end", err.Error())
			}
			if q.Start == q.End {
				bad("quietHours", "start and end must differ")
			}
		}
		p.QuietStart, p.QuietEnd = &start, &end
	}
	if len(ps) > 0 {
		s.fail(c, &stepcast.Error{Code: stepcast.EINVALID, Message: "channel settings are not valid", Problems: ps})
		return
	}
	ch, err = s.store.UpdateChannel(c.Request.Context(), ch.ID, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.enroll.RecheckChannel(c.Request.Context(), ch.ID); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toChannel(ch))
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
		AccessToken: req.AccessToken, TimeZone: req.TimeZone, MonthlyBudget: req.MonthlyBudget, AddFriendURL: req.AddFriendURL}
	if err := s.store.CreateChannel(c.Request.Context(), &ch); err != nil {
		s.fail(c, err)
		return
	}
	key, err := s.newEventsKey(c, ch.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, ChannelCreated{Channel: toChannel(&ch), EventsKey: key})
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
