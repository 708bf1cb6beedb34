package models_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/models"
)

// csvFixture is a channel with friends, and a second channel whose friend
// the first channel's uploads must not reach.
type csvFixture struct {
	store   *models.Store
	channel uint
	users   []string
	other   string // a friend of another channel
}

func newCSVFixture(t *testing.T, store *models.Store, friends int) *csvFixture {
	t.Helper()
	ctx := context.Background()
	fx := &csvFixture{store: store}
	for i, name := range []string{"main", "other"} {
		ch := &models.Channel{Name: name, LineChannelID: fmt.Sprint(2000000 + i), Secret: "s", AccessToken: "a", TimeZone: "Asia/Tokyo"}
		require.NoError(t, store.CreateChannel(ctx, ch))
		if i == 0 {
			fx.channel = ch.ID
			continue
		}
		fx.other = testenv.UserID()
		_, _, err := store.ApplyFollow(ctx, ch.ID, fx.other, time.Now())
		require.NoError(t, err)
	}
	for range friends {
		u := testenv.UserID()
		_, _, err := store.ApplyFollow(ctx, fx.channel, u, time.Now())
		require.NoError(t, err)
		fx.users = append(fx.users, u)
	}
	return fx
}

func (fx *csvFixture) attrs(t *testing.T, userID string) map[string]string {
	t.Helper()
	f, err := fx.store.Friend(context.Background(), fx.channel, userID)
	require.NoError(t, err)
	return f.AttributeMap()
}

func (fx *csvFixture) set(t *testing.T, userID string, attrs map[string]string) {
	t.Helper()
	f, err := fx.store.Friend(context.Background(), fx.channel, userID)
	require.NoError(t, err)
	_, err = fx.store.SetAttributes(context.Background(), f.ID, attrs)
	require.NoError(t, err)
}

func (fx *csvFixture) upload(body, mode string) (*models.AttributeImport, error) {
	return fx.store.ImportAttributesCSV(context.Background(), fx.channel, strings.NewReader(body), mode)
}

func invalid(t *testing.T, err error) *stepcast.Error {
	t.Helper()
	var e *stepcast.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, stepcast.EINVALID, e.Code, "%v", err)
	return e
}

func TestImportAttributesCSVPostgres(t *testing.T) {
	testImportAttributesCSV(t, func() *models.Store { return testenv.Postgres(t) })
}

// The same rules hold on dev mode's embedded database.
func TestImportAttributesCSVSQLite(t *testing.T) {
	testImportAttributesCSV(t, func() *models.Store { return testenv.SQLite(t) })
}

func testImportAttributesCSV(t *testing.T, open func() *models.Store) {
	t.Run("good file lands", func(t *testing.T) {
		fx := newCSVFixture(t, open(), 3)
		a, b, c := fx.users[0], fx.users[1], fx.users[2]
		fx.set(t, a, map[string]string{"plan": "gold", "keep": "me"})
		fx.set(t, c, map[string]string{"region": "nagoya"})
		// A BOM, spaces around names and cells, a quoted cell with a comma
		// and a line break, upper-case gender, an age with a leading zero,
		// an empty cell (removes plan), and c named twice: the later row
		// wins.
		body := "\ufeffuserId, gender ,age,region,os,plan\n" +
			a + ",Female,034,tokyo,ios,\n" +
			b + ",male,20,\"Osaka, Kita\nward\",android,silver\n" +
			c + ",other,,fukuoka,,\n" +
			c + ",unknown,150,,,\n"
		res, err := fx.upload(body, models.ImportPartial)
		require.NoError(t, err)
		assert.Equal(t, 4, res.Applied)
		assert.Empty(t, res.Rejected)
		assert.Zero(t, res.RejectedCount)

		assert.Equal(t, map[string]string{"gender": "female", "age": "34", "region": "tokyo", "os": "ios", "keep": "me"}, fx.attrs(t, a))
		assert.Equal(t, map[string]string{"gender": "male", "age": "20", "region": "Osaka, Kita\nward", "os": "android", "plan": "silver"}, fx.attrs(t, b))
		assert.Equal(t, map[string]string{"gender": "unknown", "age": "150"}, fx.attrs(t, c))
	})

	t.Run("partial mode reports bad rows by line and applies the rest", func(t *testing.T) {
		fx := newCSVFixture(t, open(), 8)
		u := fx.users
		full := map[string]string{}
		for i := range models.MaxAttributes {
			full[fmt.Sprintf("k%d", i)] = "v"
		}
		fx.set(t, u[6], full)
		stranger := testenv.UserID()
		body := strings.Join([]string{
			"userId,gender,age,region",   // 1
			u[0] + ",female,30,tokyo",    // 2 good
			"U123,male,30,tokyo",         // 3 not a user ID
			stranger + ",male,30,tokyo",  // 4 no such friend
			u[1] + ",male,30",            // 5 a column short
			u[2] + ",f,abc,tokyo",        // 6 bad gender and age
			u[3] + ",male,151,tokyo",     // 7 age out of range
			"",                           // 8 empty: skipped
			u[4] + ",male,\"30\"x,tokyo", // 9 bad quoting
			u[5] + ",male,40,\"kyo",      // 10 good: a quoted cell over two lines
			"to\"",                       // 11
			u[6] + ",male,,",             // 12 would have 101 attributes
			fx.other + ",male,30,tokyo",  // 13 a friend of another channel
			u[7] + ",male,-1,tokyo",      // 14 negative age
			u[1] + ",male,40," + strings.Repeat("x", 1025), // 15 value too long
			u[1] + ",male,40,sapporo",                      // 16 good
			"",
		}, "\n")
		res, err := fx.upload(body, models.ImportPartial)
		require.NoError(t, err)
		assert.Equal(t, 3, res.Applied)
		assert.Equal(t, 10, res.RejectedCount)
		require.Len(t, res.Rejected, 10)
		want := []struct {
			line    int
			userID  string
			message string
		}{
			{3, "", `"U123" is not a LINE user ID`},
			{4, stranger, "no friend with this user ID on the channel"},
			{5, u[1], "the row has 3 columns; the header has 4"},
			{6, u[2], `gender: "f" is not one of male, female, other, unknown; age: "abc" is not a whole number from 0 to 150`},
			{7, u[3], `age: "151" is not a whole number`},
			{9, u[4], "not valid CSV"},
			{12, u[6], "the friend would have 101 attributes; at most 100"},
			{13, fx.other, "no friend with this user ID on the channel"},
			{14, u[7], `age: "-1" is not a whole number`},
			{15, u[1], "region: the value is 1025 bytes; at most 1024"},
		}
		for i, w := range want {
			got := res.Rejected[i]
			assert.Equal(t, w.line, got.Line, "rejected[%d]: %+v", i, got)
			assert.Equal(t, w.userID, got.UserID, "rejected[%d]: %+v", i, got)
			assert.Contains(t, got.Message, w.message, "rejected[%d]", i)
		}

		assert.Equal(t, map[string]string{"gender": "female", "age": "30", "region": "tokyo"}, fx.attrs(t, u[0]))
		assert.Equal(t, map[string]string{"gender": "male", "age": "40", "region": "sapporo"}, fx.attrs(t, u[1]))
		assert.Equal(t, map[string]string{"gender": "male", "age": "40", "region": "kyo\nto"}, fx.attrs(t, u[5]))
		for _, bad := range []string{u[2], u[3], u[4], u[7]} {
			assert.Empty(t, fx.attrs(t, bad), "friend %s of a bad row was changed", bad)
		}
		assert.Equal(t, full, fx.attrs(t, u[6]))
	})

	t.Run("all mode applies nothing when a row is bad", func(t *testing.T) {
		fx := newCSVFixture(t, open(), 3)
		fx.set(t, fx.users[0], map[string]string{"region": "nagoya"})
		body := "userId,region,age\n" +
			fx.users[0] + ",tokyo,30\n" +
			fx.users[1] + ",osaka,abc\n" +
			fx.users[2] + ",kyoto,40\n"
		res, err := fx.upload(body, models.ImportAll)
		e := invalid(t, err)
		assert.Contains(t, e.Message, "1 row is not valid; nothing was applied")
		require.Len(t, e.Problems, 1)
		assert.Equal(t, "line 3", e.Problems[0].Path)
		assert.Equal(t, "userId "+fx.users[1]+`: age: "abc" is not a whole number from 0 to 150`, e.Problems[0].Message)
		assert.Zero(t, res.Applied)
		assert.Equal(t, map[string]string{"region": "nagoya"}, fx.attrs(t, fx.users[0]))
		assert.Empty(t, fx.attrs(t, fx.users[1]))
		assert.Empty(t, fx.attrs(t, fx.users[2]))

		// Every problem is listed, also those found against the database.
		body = "userId,region\n" + testenv.UserID() + ",x\n" + fx.users[0] + ",\"a\"b\n"
		_, err = fx.upload(body, models.ImportAll)
		e = invalid(t, err)
		require.Len(t, e.Problems, 2)
		assert.Equal(t, "line 2", e.Problems[0].Path)
		assert.Contains(t, e.Problems[0].Message, "no friend with this user ID")
		assert.Equal(t, "line 3", e.Problems[1].Path)
		assert.Contains(t, e.Problems[1].Message, "not valid CSV")

		// A good file lands whole.
		res, err = fx.upload("userId,region\n"+fx.users[0]+",\n"+fx.users[1]+",osaka\n", models.ImportAll)
		require.NoError(t, err)
		assert.Equal(t, 2, res.Applied)
		assert.Empty(t, fx.attrs(t, fx.users[0]))
		assert.Equal(t, map[string]string{"region": "osaka"}, fx.attrs(t, fx.users[1]))
	})

	t.Run("bad header applies nothing", func(t *testing.T) {
		fx := newCSVFixture(t, open(), 1)
		u := fx.users[0]
		many := "userId"
		for i := range models.MaxAttributes + 1 {
			many += fmt.Sprintf(",k%d", i)
		}
		for name, c := range map[string]struct{ header, problem string }{
			"empty file":       {"", "the file is empty"},
			"no userId":        {"user,region", `the first column must be userId, not "user"`},
			"userId not first": {"region,userId", "the first column must be userId"},
			"no attributes":    {"userId", "the header names no attribute"},
			"empty name":       {"userId,region,,os", "the column name is empty"},
			"duplicate":        {"userId,region,os,region", `the column "region" is also column 2`},
			"long name":        {"userId," + strings.Repeat("k", 65), "over 64 characters"},
			"userId twice":     {"userId,region,userId", "userId is the first column only"},
			"too many":         {many, "the header names 101 attributes; at most 100"},
			"bad quoting":      {`userId,"region`, "the header is not valid CSV"},
		} {
			for _, mode := range []string{models.ImportPartial, models.ImportAll} {
				body := c.header
				if body != "" {
					body += "\n" + u + strings.Repeat(",x", strings.Count(c.header, ",")) + "\n"
				}
				res, err := fx.upload(body, mode)
				e := invalid(t, err)
				require.NotEmpty(t, e.Problems, "%s %s", name, mode)
				assert.Contains(t, e.Problems[0].Message, c.problem, "%s %s", name, mode)
				assert.Zero(t, res.Applied, "%s %s", name, mode)
			}
		}
		// Japanese keys count characters, not bytes.
		res, err := fx.upload("userId,"+strings.Repeat("会", 64)+"\n"+u+",x\n", models.ImportPartial)
		require.NoError(t, err)
		assert.Equal(t, 1, res.Applied)
		assert.Equal(t, map[string]string{strings.Repeat("会", 64): "x"}, fx.attrs(t, u))
	})

	t.Run("unknown mode", func(t *testing.T) {
		fx := newCSVFixture(t, open(), 1)
		_, err := fx.upload("userId,region\n"+fx.users[0]+",x\n", "some")
		invalid(t, err)
		assert.Empty(t, fx.attrs(t, fx.users[0]))
	})

	t.Run("batches and the rejected cap", func(t *testing.T) {
		fx := newCSVFixture(t, open(), 2)
		// 1200 unknown friends, then two good rows past the first batches.
		var b strings.Builder
		b.WriteString("userId,region\n")
		for range 1200 {
			b.WriteString(testenv.UserID() + ",x\n")
		}
		b.WriteString(fx.users[0] + ",tokyo\n" + fx.users[1] + ",osaka\n")
		res, err := fx.upload(b.String(), models.ImportPartial)
		require.NoError(t, err)
		assert.Equal(t, 2, res.Applied)
		assert.Equal(t, 1200, res.RejectedCount)
		require.Len(t, res.Rejected, models.MaxRejectedListed)
		for i, r := range res.Rejected {
			require.Equal(t, i+2, r.Line)
		}
		assert.Equal(t, "tokyo", fx.attrs(t, fx.users[0])["region"])

		_, err = fx.upload(b.String(), models.ImportAll)
		e := invalid(t, err)
		assert.Len(t, e.Problems, models.MaxRejectedListed)
		assert.Contains(t, e.Message, "1200 rows are not valid; nothing was applied (the first 1000 are listed)")
	})

	t.Run("a body that breaks off", func(t *testing.T) {
		fx := newCSVFixture(t, open(), 1)
		u := fx.users[0]
		var b strings.Builder
		b.WriteString("userId,n\n")
		for i := range 700 {
			fmt.Fprintf(&b, "%s,%d\n", u, i)
		}
		broken := errors.New("connection reset")
		read := func() io.Reader { return io.MultiReader(strings.NewReader(b.String()), &failingReader{broken}) }

		// All mode: nothing.
		res, err := fx.store.ImportAttributesCSV(context.Background(), fx.channel, read(), models.ImportAll)
		var re *models.UploadReadError
		require.ErrorAs(t, err, &re)
		assert.ErrorIs(t, err, broken)
		assert.Zero(t, res.Applied)
		assert.Empty(t, fx.attrs(t, u))

		// Partial mode: the first batch (500 rows) stays; the rows read
		// after it, in an unfinished batch, do not land.
		res, err = fx.store.ImportAttributesCSV(context.Background(), fx.channel, read(), models.ImportPartial)
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 701, re.Line)
		assert.Equal(t, 500, res.Applied)
		assert.Equal(t, map[string]string{"n": "499"}, fx.attrs(t, u))

		// A body over its limit says so.
		limited := http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(b.String())), 1000)
		_, err = fx.store.ImportAttributesCSV(context.Background(), fx.channel, limited, models.ImportAll)
		var tooBig *http.MaxBytesError
		require.ErrorAs(t, err, &tooBig)
		assert.Equal(t, int64(1000), tooBig.Limit)
	})
}

type failingReader struct{ err error }

func (r *failingReader) Read([]byte) (int, error) { return 0, r.err }
