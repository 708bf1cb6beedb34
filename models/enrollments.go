package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// RecordEnrollment stores a started workflow run. Recording the same run
// again (a redelivered event, a retried dispatch) changes nothing.
func (s *Store) RecordEnrollment(ctx context.Context, e *Enrollment) error {
	e.Status = EnrollmentRunning
	err := s.DB.WithContext(ctx).
		Clauses(clause.OnConflict{DoNothing: true}).Create(e).Error
	return dbError(err, fmt.Sprintf("enrollment %s", e.WorkflowID))
}

// FinishEnrollment records how the run ended, from its row's identity
// (WorkflowID, RunID and the fields a new row needs). A run can end before
// its row is written: a short scenario outruns the enrollment that started
// it, or the process stopped between the start and the row. The end then
// writes the row, so that the same follow applied again finds it and does
// not start a second run, and RecordEnrollment, coming later, leaves it
// ended.
func (s *Store) FinishEnrollment(ctx context.Context, run Enrollment, status, reason string, at time.Time) error {
	at = at.UTC()
	run.ID, run.Status, run.ExitReason, run.EndedAt = 0, status, reason, &at
	err := s.DB.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "workflow_id"}, {Name: "run_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"status", "exit_reason", "ended_at", "updated_at"}),
	}).Create(&run).Error
	return dbError(err, fmt.Sprintf("enrollment %s", run.WorkflowID))
}

// RunningEnrollmentsOfFriend lists the friend's enrollments that have not ended.
func (s *Store) RunningEnrollmentsOfFriend(ctx context.Context, friendID uint) ([]Enrollment, error) {
	var es []Enrollment
	err := s.DB.WithContext(ctx).Where("friend_id = ? AND status = ?", friendID, EnrollmentRunning).Find(&es).Error
	return es, dbError(err, "enrollments")
}

// EnrollmentFilter narrows an enrollment list; zero fields do not filter.
type EnrollmentFilter struct {
	ChannelID  uint
	ScenarioID uint
	FriendID   uint
	Status     string
}

// Enrollments lists enrollments, newest first.
func (s *Store) Enrollments(ctx context.Context, f EnrollmentFilter, p Page) ([]Enrollment, error) {
	q := s.DB.WithContext(ctx).Where("channel_id = ?", f.ChannelID)
	if f.ScenarioID != 0 {
		q = q.Where("scenario_id = ?", f.ScenarioID)
	}
	if f.FriendID != 0 {
		q = q.Where("friend_id = ?", f.FriendID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	var es []Enrollment
	err := p.apply(q.Order("id DESC")).Find(&es).Error
	return es, dbError(err, "enrollments")
}

// Enrollment returns one of the channel's enrollments.
func (s *Store) Enrollment(ctx context.Context, channelID, id uint) (*Enrollment, error) {
	var e Enrollment
	if err := s.DB.WithContext(ctx).Where("channel_id = ?", channelID).First(&e, id).Error; err != nil {
		return nil, dbError(err, fmt.Sprintf("enrollment %d", id))
	}
	return &e, nil
}
