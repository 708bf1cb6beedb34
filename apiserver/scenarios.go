package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
)

// ScenarioRequest creates or updates a scenario. Document is the scenario
// document (see scenario.Document).
type ScenarioRequest struct {
	Key      string          `json:"key"`
	Document json.RawMessage `json:"document"`
}

// Scenario is a scenario as the API shows it.
type Scenario struct {
	ID        uint              `json:"id"`
	ChannelID uint              `json:"channelId"`
	Key       string            `json:"key"`
	Name      string            `json:"name"`
	Status    string            `json:"status"`
	Version   int               `json:"version"`
	Draft     scenario.Document `json:"draft"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

func toScenario(sc *models.Scenario) Scenario {
	out := Scenario{ID: sc.ID, ChannelID: sc.ChannelID, Key: sc.Key, Name: sc.Name, Status: sc.Status,
		Version: sc.Version, CreatedAt: sc.CreatedAt, UpdatedAt: sc.UpdatedAt}
	// Drafts are stored only after validation, so they parse.
	_ = json.Unmarshal([]byte(sc.Draft), &out.Draft)
	return out
}

// keyPattern keeps scenario keys readable in workflow IDs.
var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// document parses and validates a request's scenario document against
// the channel (its audiences and tags) and returns it with its canonical
// JSON.
func (s *Server) document(c *gin.Context, channelID uint, raw json.RawMessage) (*scenario.Document, string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", &stepcast.Error{Code: stepcast.EINVALID, Message: "scenario is not valid",
			Problems: []stepcast.Problem{{Path: "document", Message: "is required"}}}
	}
	doc, err := scenario.Parse(raw)
	if err != nil {
		return nil, "", err
	}
	known, err := s.known(c, channelID)
	if err != nil {
		return nil, "", err
	}
	if err := doc.ValidateWith(known); err != nil {
		return nil, "", err
	}
	canonical, err := json.Marshal(doc)
	if err != nil {
		return nil, "", err
	}
	return doc, string(canonical), nil
}

// known is what a scenario of the channel may refer to.
func (s *Server) known(c *gin.Context, channelID uint) (scenario.Known, error) {
	k := scenario.Known{Audiences: map[string]bool{}, Tags: map[string]bool{}}
	keys, err := s.store.AudienceKeys(c.Request.Context(), channelID)
	if err != nil {
		return k, err
	}
	for _, key := range keys {
		k.Audiences[key] = true
	}
	tags, err := s.store.ChannelTags(c.Request.Context(), channelID)
	if err != nil {
		return k, err
	}
	for _, t := range tags {
		k.Tags[t] = true
	}
	return k, nil
}

func (s *Server) createScenario(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req ScenarioRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if !keyPattern.MatchString(req.Key) {
		s.fail(c, &stepcast.Error{Code: stepcast.EINVALID, Message: "scenario is not valid", Problems: []stepcast.Problem{{
			Path: "key", Message: fmt.Sprintf("%q must be 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit", req.Key)}}})
		return
	}
	doc, canonical, err := s.document(c, ch.ID, req.Document)
	if err != nil {
		s.fail(c, err)
		return
	}
	sc := models.Scenario{ChannelID: ch.ID, Key: req.Key, Name: doc.Name, Draft: canonical}
	if err := s.store.CreateScenario(c.Request.Context(), &sc); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, toScenario(&sc))
}

func (s *Server) listScenarios(c *gin.Context) {
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := page(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	scs, err := s.store.Scenarios(c.Request.Context(), ch.ID, c.Query("key"), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(scs, toScenario))
}

func (s *Server) scenario(c *gin.Context) (*models.Scenario, error) {
	id, err := idParam(c, "scenarioID", "scenario")
	if err != nil {
		return nil, err
	}
	return s.store.Scenario(c.Request.Context(), id)
}

func (s *Server) getScenario(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toScenario(sc))
}

// updateScenario replaces the draft; running enrollments are not touched
// until the draft is published, and then only new ones get it.
func (s *Server) updateScenario(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req struct {
		Document json.RawMessage `json:"document"`
	}
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	doc, canonical, err := s.document(c, sc.ChannelID, req.Document)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.UpdateDraft(c.Request.Context(), sc.ID, doc.Name, canonical); err != nil {
		s.fail(c, err)
		return
	}
	sc, err = s.store.Scenario(c.Request.Context(), sc.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, toScenario(sc))
}

// Version is a published scenario version.
type Version struct {
	ScenarioID  uint      `json:"scenarioId"`
	Version     int       `json:"version"`
	PublishedAt time.Time `json:"publishedAt"`
}

// publishScenario makes the draft the next immutable version, which new
// enrollments get; the draft is validated again because the rules (such as
// what LINE accepts) may have changed since it was saved.
func (s *Server) publishScenario(c *gin.Context) {
	sc, err := s.scenario(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	doc, _, err := s.document(c, sc.ChannelID, json.RawMessage(sc.Draft))
	if err != nil {
		s.fail(c, err)
		return
	}
	v, err := s.store.Publish(c.Request.Context(), sc.ID, sc.Draft, time.Now())
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.enroll.StartAudienceEnrollment(c.Request.Context(), sc, v.Version, doc); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, Version{ScenarioID: v.ScenarioID, Version: v.Version, PublishedAt: v.PublishedAt})
}
