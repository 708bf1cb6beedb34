package models

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// errNoRoom rolls back a delivery whose budget reservation failed.
var errNoRoom = errors.New("no room in the budget")

// StepState is what a due step is judged and pushed on.
type StepState struct {
	ScenarioStatus string
	Friend         Friend  `gorm:"embedded;embeddedPrefix:f_"`
	Channel        Channel `gorm:"embedded;embeddedPrefix:c_"`
}

// StepState reads the scenario's status, the friend and the channel in one
// query: every step asks, and three reads were three round trips. A
// missing one is ENOTFOUND.
func (s *Store) StepState(ctx context.Context, channelID, scenarioID, friendID uint) (*StepState, error) {
	db := s.DB.WithContext(ctx)
	friendCols, err := columnsAs(db, &Friend{}, "f")
	if err != nil {
		return nil, err
	}
	channelCols, err := columnsAs(db, &Channel{}, "c")
	if err != nil {
		return nil, err
	}
	var st StepState
	res := db.Raw("SELECT s.status AS scenario_status, "+friendCols+", "+channelCols+
		" FROM friends f LEFT JOIN channels c ON c.id = ? LEFT JOIN scenarios s ON s.id = ? WHERE f.id = ?",
		channelID, scenarioID, friendID).Scan(&st)
	switch {
	case res.Error != nil:
		return nil, dbError(res.Error, "step state")
	case res.RowsAffected == 0:
		return nil, dbError(errNotFound, fmt.Sprintf("friend %d", friendID))
	case st.Channel.ID == 0:
		return nil, dbError(errNotFound, fmt.Sprintf("channel %d", channelID))
	case st.ScenarioStatus == "":
		return nil, dbError(errNotFound, fmt.Sprintf("scenario %d", scenarioID))
	}
	return &st, nil
}

// columnsAs selects every column of model from the table aliased alias,
// each named alias_column, as StepState's embedded rows are scanned: a
// column added to the model is read without a change here.
func columnsAs(db *gorm.DB, model any, alias string) (string, error) {
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(model); err != nil {
		return "", fmt.Errorf("models: columns of %T: %w", model, err)
	}
	cols := make([]string, len(stmt.Schema.DBNames))
	for i, name := range stmt.Schema.DBNames {
		cols[i] = stmt.Quote(clause.Column{Table: alias, Name: name}) + " AS " + stmt.Quote(alias+"_"+name)
	}
	return strings.Join(cols, ", "), nil
}

// DeliveryByKey returns the delivery row of a retry key, or nil when the
// step was never begun.
func (s *Store) DeliveryByKey(ctx context.Context, retryKey string) (*Delivery, error) {
	var ds []Delivery
	err := s.DB.WithContext(ctx).Where("retry_key = ?", retryKey).Limit(1).Find(&ds).Error
	if err != nil || len(ds) == 0 {
		return nil, dbError(err, fmt.Sprintf("delivery %s", retryKey))
	}
	return &ds[0], nil
}

// BeginDelivery returns the delivery row for d.RetryKey and counts the
// attempt. A new row, or one held back by LINE's monthly limit, becomes
// "sending"; when budget is set and has a monthly budget, the step's
// messages are reserved from d.BudgetMonth in the same transaction, so a
// step is reserved once however often it is tried. ok is false, and
// nothing is written, when the budget has no room. A row that is sending,
// sent, failed or skipped comes back as it is: a sent row tells the caller
// not to push again.
func (s *Store) BeginDelivery(ctx context.Context, d *Delivery, budget *Channel) (out *Delivery, ok bool, err error) {
	reserve := budget != nil && budget.MonthlyBudget > 0 && d.BudgetMonth != ""
	if !reserve {
		// The usual first try: a new row is one statement.
		d.Status, d.Attempts = DeliverySending, 1
		res := s.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(d)
		if res.Error != nil {
			return nil, false, dbError(res.Error, fmt.Sprintf("delivery %s", d.RetryKey))
		}
		if res.RowsAffected == 1 {
			return d, true, nil
		}
		d.ID = 0
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var rows []Delivery
		if err := tx.Where("retry_key = ?", d.RetryKey).Limit(1).Find(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 1 && rows[0].Status != DeliveryHeld {
			out = &rows[0]
			out.Attempts++
			return tx.Model(out).Update("attempts", out.Attempts).Error
		}
		if reserve {
			room, err := reserveBudget(tx, budget, d.BudgetMonth, int64(d.MessageCount))
			if err != nil {
				return err
			}
			if !room {
				return errNoRoom
			}
		}
		if len(rows) == 0 {
			d.Status, d.Attempts = DeliverySending, 1
			out = d
			return tx.Create(d).Error
		}
		out = &rows[0]
		out.Status, out.BudgetMonth, out.Attempts = DeliverySending, d.BudgetMonth, out.Attempts+1
		return tx.Model(out).Updates(map[string]any{"status": out.Status, "budget_month": out.BudgetMonth, "attempts": out.Attempts}).Error
	})
	if errors.Is(err, errNoRoom) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, dbError(err, fmt.Sprintf("delivery %s", d.RetryKey))
	}
	return out, true, nil
}

// FinishDelivery stores the outcome of a push and, when delivered is set,
// the friend's delivered event, atomically. Every send finishes, so on
// PostgreSQL it is one statement (the update in a WITH clause, which runs
// whether or not the insert reads it): a transaction around two
// statements was four round trips, two thirds of a send's finish.
func (s *Store) FinishDelivery(ctx context.Context, d *Delivery, delivered *FriendEvent) error {
	if delivered != nil {
		delivered.At = delivered.At.UTC()
		if delivered.Props == "" {
			delivered.Props = "{}"
		}
	}
	update := func(tx *gorm.DB) error {
		return tx.Model(&Delivery{}).Where("retry_key = ?", d.RetryKey).
			Updates(map[string]any{"status": d.Status, "error": d.Error, "line_request_id": d.LineRequestID,
				"sent_at": d.SentAt, "budget_month": d.BudgetMonth}).Error
	}
	db := s.DB.WithContext(ctx)
	var err error
	switch {
	case delivered == nil:
		err = update(db)
	case db.Dialector.Name() == "postgres":
		now := db.NowFunc()
		err = db.Exec(finishDeliverySQL, d.Status, d.Error, d.LineRequestID, d.SentAt, d.BudgetMonth, now, d.RetryKey,
			delivered.ChannelID, delivered.FriendID, delivered.Type, delivered.SourceKey, delivered.Name, delivered.ScenarioKey,
			delivered.NodeID, delivered.Props, delivered.At, now).Error
	default:
		err = db.Transaction(func(tx *gorm.DB) error {
			if err := update(tx); err != nil {
				return err
			}
			return tx.Create(delivered).Error
		})
	}
	return dbError(err, fmt.Sprintf("delivery %s", d.RetryKey))
}

// finishDeliverySQL is FinishDelivery's statement on PostgreSQL; it names
// every column of friend_events (TestFinishDelivery fails when one is
// missing).
const finishDeliverySQL = `WITH finished AS (
	UPDATE deliveries SET status = ?, error = ?, line_request_id = ?, sent_at = ?, budget_month = ?, updated_at = ?
	WHERE retry_key = ?)
INSERT INTO friend_events (channel_id, friend_id, type, source_key, name, scenario_key, node_id, props, at, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// DeliveryFilter narrows a delivery list; zero fields do not filter.
type DeliveryFilter struct {
	ChannelID  uint
	ScenarioID uint
	FriendID   uint
	Status     string
}

// Deliveries lists deliveries, newest first.
func (s *Store) Deliveries(ctx context.Context, f DeliveryFilter, p Page) ([]Delivery, error) {
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
	var ds []Delivery
	err := p.apply(q.Order("id DESC")).Find(&ds).Error
	return ds, dbError(err, "deliveries")
}
