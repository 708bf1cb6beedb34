package models

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/stepcast/stepcast"
)

// CreateScenario inserts a draft scenario.
func (s *Store) CreateScenario(ctx context.Context, sc *Scenario) error {
	sc.Status = ScenarioDraft
	return dbError(s.DB.WithContext(ctx).Create(sc).Error, fmt.Sprintf("scenario %q on this channel", sc.Key))
}

// Scenario returns a scenario by ID.
func (s *Store) Scenario(ctx context.Context, id uint) (*Scenario, error) {
	var sc Scenario
	if err := s.DB.WithContext(ctx).First(&sc, id).Error; err != nil {
		return nil, dbError(err, fmt.Sprintf("scenario %d", id))
	}
	return &sc, nil
}

// Scenarios lists a channel's scenarios; a non-empty key selects one.
func (s *Store) Scenarios(ctx context.Context, channelID uint, key string, p Page) ([]Scenario, error) {
	var scs []Scenario
	q := s.DB.WithContext(ctx).Where("channel_id = ?", channelID)
	if key != "" {
		q = q.Where("key = ?", key)
	}
	err := p.apply(q.Order("id")).Find(&scs).Error
	return scs, dbError(err, "scenarios")
}

// Publish stores draft (already validated by the caller) as the scenario's
// next immutable version and makes a draft scenario active. An ended
// scenario cannot be published.
func (s *Store) Publish(ctx context.Context, scenarioID uint, draft string, now time.Time) (*ScenarioVersion, error) {
	var v ScenarioVersion
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var sc Scenario
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&sc, scenarioID).Error; err != nil {
			return dbError(err, fmt.Sprintf("scenario %d", scenarioID))
		}
		if sc.Status == ScenarioEnded {
			return stepcast.Errorf(stepcast.ECONFLICT, "scenario %d has ended and cannot be published again", scenarioID)
		}
		v = ScenarioVersion{ScenarioID: sc.ID, Version: sc.Version + 1, Document: draft, PublishedAt: now.UTC()}
		if err := tx.Create(&v).Error; err != nil {
			return dbError(err, fmt.Sprintf("version %d of scenario %d", v.Version, sc.ID))
		}
		updates := map[string]any{"version": v.Version, "draft": draft}
		if sc.Status == ScenarioDraft {
			updates["status"] = ScenarioActive
		}
		return tx.Model(&sc).Updates(updates).Error
	})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// UpdateDraft replaces a scenario's draft document and name.
func (s *Store) UpdateDraft(ctx context.Context, scenarioID uint, name, draft string) error {
	res := s.DB.WithContext(ctx).Model(&Scenario{}).Where("id = ?", scenarioID).
		Updates(map[string]any{"name": name, "draft": draft})
	if res.Error != nil {
		return dbError(res.Error, fmt.Sprintf("scenario %d", scenarioID))
	}
	if res.RowsAffected == 0 {
		return stepcast.Errorf(stepcast.ENOTFOUND, "scenario %d not found", scenarioID)
	}
	return nil
}

// ScenarioVersion returns one published version.
func (s *Store) ScenarioVersion(ctx context.Context, scenarioID uint, version int) (*ScenarioVersion, error) {
	var v ScenarioVersion
	err := s.DB.WithContext(ctx).Where("scenario_id = ? AND version = ?", scenarioID, version).First(&v).Error
	if err != nil {
		return nil, dbError(err, fmt.Sprintf("version %d of scenario %d", version, scenarioID))
	}
	return &v, nil
}

// ActiveScenario is an active scenario with its latest published version.
type ActiveScenario struct {
	Scenario Scenario
	Version  ScenarioVersion
}

// ActiveScenarios returns the channel's active scenarios with the version that
// new enrollments get, in one query: every follow asks.
func (s *Store) ActiveScenarios(ctx context.Context, channelID uint) ([]ActiveScenario, error) {
	var scs []Scenario
	err := s.DB.WithContext(ctx).Where("channel_id = ? AND status = ?", channelID, ScenarioActive).Order("id").Find(&scs).Error
	if err != nil || len(scs) == 0 {
		return nil, dbError(err, "active scenarios")
	}
	conds := s.DB.WithContext(ctx)
	for i, sc := range scs {
		if i == 0 {
			conds = conds.Where("scenario_id = ? AND version = ?", sc.ID, sc.Version)
		} else {
			conds = conds.Or("scenario_id = ? AND version = ?", sc.ID, sc.Version)
		}
	}
	var vs []ScenarioVersion
	if err := conds.Find(&vs).Error; err != nil {
		return nil, dbError(err, "active scenario versions")
	}
	byScenario := make(map[uint]ScenarioVersion, len(vs))
	for _, v := range vs {
		byScenario[v.ScenarioID] = v
	}
	out := make([]ActiveScenario, 0, len(scs))
	for _, sc := range scs {
		v, ok := byScenario[sc.ID]
		if !ok {
			return nil, dbError(errNotFound, fmt.Sprintf("version %d of scenario %d", sc.Version, sc.ID))
		}
		out = append(out, ActiveScenario{Scenario: sc, Version: v})
	}
	return out, nil
}

// transitions lists the status changes the lifecycle allows, besides
// draft → active, which only publishing does.
var transitions = map[string][]string{
	ScenarioActive: {ScenarioPaused, ScenarioEnded},
	ScenarioPaused: {ScenarioActive, ScenarioEnded},
}

// SetScenarioStatus moves a scenario through its lifecycle: active ↔
// paused, and either to ended. Anything else is ECONFLICT.
func (s *Store) SetScenarioStatus(ctx context.Context, scenarioID uint, to string) (*Scenario, error) {
	var sc Scenario
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&sc, scenarioID).Error; err != nil {
			return dbError(err, fmt.Sprintf("scenario %d", scenarioID))
		}
		if !slices.Contains(transitions[sc.Status], to) {
			return stepcast.Errorf(stepcast.ECONFLICT, "scenario %d is %s and cannot become %s", scenarioID, sc.Status, to)
		}
		sc.Status = to
		return tx.Model(&sc).Update("status", to).Error
	})
	if err != nil {
		return nil, err
	}
	return &sc, nil
}

// ScenarioVersions lists a scenario's published versions, newest first.
func (s *Store) ScenarioVersions(ctx context.Context, scenarioID uint) ([]ScenarioVersion, error) {
	var vs []ScenarioVersion
	err := s.DB.WithContext(ctx).Where("scenario_id = ?", scenarioID).Order("version DESC").Find(&vs).Error
	return vs, dbError(err, "scenario versions")
}
