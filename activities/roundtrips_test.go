package activities_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

// dbCounts is what a store sent to its database: round trips (each
// statement, BEGIN, COMMIT and ROLLBACK) and transactions (a statement
// outside one, as PostgreSQL's xact_commit counts it, or a BEGIN). pgx
// adds a prepare the first time a connection runs a statement; a warm pool
// does not pay it and it is not counted.
type dbCounts struct {
	roundTrips, transactions atomic.Int64
}

// countingPool is a pool, or with inTx a transaction, that counts.
type countingPool struct {
	gorm.ConnPool
	counts *dbCounts
	inTx   bool
}

// countingTx is a pointer: GORM checks a transaction for nil.
type countingTx struct {
	countingPool
	tx *sql.Tx
}

// countDB makes store count what it sends to its database.
func countDB(store *models.Store) *dbCounts {
	p := countingPool{ConnPool: store.DB.ConnPool, counts: new(dbCounts)}
	store.DB.ConnPool, store.DB.Statement.ConnPool = p, p
	return p.counts
}

func (p countingPool) count() {
	p.counts.roundTrips.Add(1)
	if !p.inTx {
		p.counts.transactions.Add(1)
	}
}

func (p countingPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	p.count()
	return p.ConnPool.ExecContext(ctx, query, args...)
}

func (p countingPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	p.count()
	return p.ConnPool.QueryContext(ctx, query, args...)
}

func (p countingPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	p.count()
	return p.ConnPool.QueryRowContext(ctx, query, args...)
}

func (p countingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	p.count()
	tx, err := p.ConnPool.(gorm.TxBeginner).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{countingPool: countingPool{ConnPool: tx, counts: p.counts, inTx: true}, tx: tx}, nil
}

// GetDBConn lets store.Close reach the pool.
func (p countingPool) GetDBConn() (*sql.DB, error) {
	db, ok := p.ConnPool.(*sql.DB)
	if !ok {
		return nil, fmt.Errorf("counting pool wraps a %T", p.ConnPool)
	}
	return db, nil
}

func (t *countingTx) Commit() error {
	t.count()
	return t.tx.Commit()
}

func (t *countingTx) Rollback() error {
	t.count()
	return t.tx.Rollback()
}

// TestDeliverRoundTrips counts the application database's round trips of
// the common Deliver on PostgreSQL: a new step of an active scenario, with
// no budget, frequency cap or exit audience, pushed at once. That is the
// step state read, the delivery row's insert, and the finish (the row's
// update and the delivered event, in one statement); a process claims
// rate tokens for several pushes at a time, and clears old rate windows
// once a minute.
func TestDeliverRoundTrips(t *testing.T) {
	f := newFixtureOn(t, testenv.Postgres(t))
	_, deliver := deliverFixture(t, f, 0)
	counts := countDB(f.store)
	now := time.Date(2026, 1, 31, 1, 0, 0, 0, time.UTC)

	const sends = 30
	fewest := int64(math.MaxInt64)
	for i := range sends {
		before := counts.roundTrips.Load()
		res, err := deliver(f.step("m", fmt.Sprintf("m#%d", i), now, hello))
		require.NoError(t, err)
		require.Equal(t, metrics.SendSent, res.Outcome)
		fewest = min(fewest, counts.roundTrips.Load()-before)
	}
	perSend := float64(counts.roundTrips.Load()) / sends
	t.Logf("per Deliver, over %d sends: %.2f round trips (%d without a rate claim), %.2f transactions",
		sends, perSend, fewest, float64(counts.transactions.Load())/sends)
	require.LessOrEqual(t, fewest, int64(3))
	require.LessOrEqual(t, perSend, 4.0)
}
