package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/stepcast/stepcast"
)

// maxConns bounds a process's PostgreSQL connections; PostgreSQL's
// default limit of 100 then leaves room for a few API and worker replicas.
const maxConns = 20

// Store reads and writes Stepcast's rows. One file per aggregate.
type Store struct {
	DB *gorm.DB
}

// Open connects to PostgreSQL when databaseURL is set and otherwise to the
// embedded SQLite database at sqlitePath (pure Go, for dev mode on a machine
// without PostgreSQL).
func Open(databaseURL, sqlitePath string, log *slog.Logger) (*Store, error) {
	cfg := &gorm.Config{
		TranslateError: true,
		// A single statement is atomic on its own; GORM's default would wrap
		// each in BEGIN and COMMIT, three round trips for one. Writes of
		// several statements use Transaction explicitly.
		SkipDefaultTransaction: true,
		Logger: logger.NewSlogLogger(log, logger.Config{
			SlowThreshold:             500 * time.Millisecond,
			LogLevel:                  logger.Warn,
			IgnoreRecordNotFoundError: true,
			// Values stay out of the log: they include channel secrets and
			// access tokens.
			ParameterizedQueries: true,
		}),
		NowFunc: func() time.Time { return time.Now().UTC() },
	}
	var (
		db  *gorm.DB
		err error
	)
	if databaseURL != "" {
		db, err = gorm.Open(postgres.Open(databaseURL), cfg)
		if err != nil {
			return nil, fmt.Errorf("models: open postgres: %w", err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		// database/sql keeps 2 idle connections by default: under load
		// every other query opened a new PostgreSQL session. Keep the pool.
		sqlDB.SetMaxOpenConns(maxConns)
		sqlDB.SetMaxIdleConns(maxConns)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		if dir := filepath.Dir(sqlitePath); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("models: create sqlite folder: %w", err)
			}
		}
		// WAL and a busy timeout let the API and the worker of dev mode share
		// the file; one open connection avoids SQLITE_BUSY between our own.
		dsn := sqlitePath + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"
		db, err = gorm.Open(sqlite.Open(dsn), cfg)
		if err != nil {
			return nil, fmt.Errorf("models: open sqlite: %w", err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		sqlDB.SetMaxOpenConns(1)
	}
	return &Store{DB: db}, nil
}

// Migrate creates or updates the schema.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.DB.WithContext(ctx).AutoMigrate(All()...); err != nil {
		return fmt.Errorf("models: migrate: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// dbError gives a database error its code: a missing row is ENOTFOUND and a
// duplicate key is ECONFLICT; what names the thing is the caller's message.
func dbError(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound), errors.Is(err, errNotFound):
		return stepcast.Errorf(stepcast.ENOTFOUND, "%s not found", what)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return stepcast.Errorf(stepcast.ECONFLICT, "%s already exists", what)
	default:
		return fmt.Errorf("models: %s: %w", what, err)
	}
}

// Page bounds a list.
type Page struct {
	Limit  int
	Offset int
}

func (p Page) apply(db *gorm.DB) *gorm.DB {
	limit := p.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return db.Limit(limit).Offset(p.Offset)
}

// errNotFound marks a missing row found without a query that says so.
var errNotFound = errors.New("not found")
