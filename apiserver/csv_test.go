package apiserver_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast/apiserver"
	"github.com/stepcast/stepcast/internal/testenv"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

const csvPath = "/api/v1/channels/%d/friends/attributes.csv"

// csvServer is the API on a fresh PostgreSQL database with one channel.
type csvServer struct {
	store   *models.Store
	h       http.Handler
	channel uint
}

func newCSVServer(t *testing.T) *csvServer {
	t.Helper()
	store := testenv.Postgres(t)
	ch := &models.Channel{Name: "shop", LineChannelID: "3000001", Secret: "s", AccessToken: "a", TimeZone: "Asia/Tokyo"}
	require.NoError(t, store.CreateChannel(context.Background(), ch))
	srv := apiserver.New(apiserver.Config{AdminToken: "t"}, apiserver.Deps{Store: store, Metrics: metrics.New(), Log: testenv.Logger()})
	return &csvServer{store: store, h: srv.Handler(), channel: ch.ID}
}

// friends adds n friends to the channel, in one statement: user IDs
// "U" + md5(salt + i), which Go computes too.
func (s *csvServer) friends(t *testing.T, n int) []string {
	t.Helper()
	salt := testenv.UserID()
	err := s.store.DB.Exec(`INSERT INTO friends (channel_id, user_id, status, attributes, first_followed_at, last_followed_at, status_at, created_at, updated_at)
		SELECT ?, 'U' || md5(? || i::text), ?, '{}', now(), now(), now(), now(), now() FROM generate_series(1, ?) AS i`,
		s.channel, salt, models.FriendFollowing, n).Error
	require.NoError(t, err)
	users := make([]string, n)
	for i := range users {
		sum := md5.Sum([]byte(salt + strconv.Itoa(i+1)))
		users[i] = "U" + hex.EncodeToString(sum[:])
	}
	return users
}

func (s *csvServer) do(t *testing.T, method, path, token, contentType string, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	return rec
}

func (s *csvServer) upload(t *testing.T, query, body string) *httptest.ResponseRecorder {
	t.Helper()
	return s.do(t, http.MethodPost, fmt.Sprintf(csvPath, s.channel)+query, "t", "text/csv", strings.NewReader(body))
}

// attrs reads a friend's attributes back through the API.
func (s *csvServer) attrs(t *testing.T, userID string) map[string]string {
	t.Helper()
	rec := s.do(t, http.MethodGet, fmt.Sprintf("/api/v1/channels/%d/friends/%s", s.channel, userID), "t", "", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var d apiserver.FriendDetail
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &d))
	return d.Attributes
}

func decodeUpload(t *testing.T, rec *httptest.ResponseRecorder) apiserver.AttributesUpload {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	// The answer is what openapi.yaml says it is.
	doc := loadOpenAPI(t)
	var raw any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	schema := doc.Components.Schemas["AttributesUpload"].Value
	require.NoError(t, schema.VisitJSON(raw), rec.Body.String())
	checkKeys(t, "AttributesUpload", schema, raw)
	var out apiserver.AttributesUpload
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	return out
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder, status int) apiserver.ErrorDetail {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	var e apiserver.ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
	return e.Error
}

func TestAttributesCSVGoodFileLands(t *testing.T) {
	s := newCSVServer(t)
	u := s.friends(t, 3)
	body := "\ufeffuserId,gender,age,region,os,member_rank\r\n" +
		u[0] + ",female,34,tokyo,ios,gold\r\n" +
		u[1] + ",male,51,osaka,android,\r\n"
	out := decodeUpload(t, s.upload(t, "", body))
	assert.Equal(t, apiserver.AttributesUpload{Mode: "partial", Applied: 2, Rejected: []apiserver.RejectedRow{}}, out)
	assert.Equal(t, map[string]string{"gender": "female", "age": "34", "region": "tokyo", "os": "ios", "member_rank": "gold"}, s.attrs(t, u[0]))
	assert.Equal(t, map[string]string{"gender": "male", "age": "51", "region": "osaka", "os": "android"}, s.attrs(t, u[1]))
	assert.Empty(t, s.attrs(t, u[2]))

	// An empty cell removes the key; the others stay.
	out = decodeUpload(t, s.upload(t, "?mode=all", "userId,member_rank,region\n"+u[0]+",,\n"+u[1]+",silver,\n"))
	assert.Equal(t, apiserver.AttributesUpload{Mode: "all", Applied: 2, Rejected: []apiserver.RejectedRow{}}, out)
	assert.Equal(t, map[string]string{"gender": "female", "age": "34", "os": "ios"}, s.attrs(t, u[0]))
	assert.Equal(t, map[string]string{"gender": "male", "age": "51", "os": "android", "member_rank": "silver"}, s.attrs(t, u[1]))
}

func TestAttributesCSVPartialReportsBadRows(t *testing.T) {
	s := newCSVServer(t)
	u := s.friends(t, 4)
	stranger := testenv.UserID()
	body := strings.Join([]string{
		"userId,gender,age",   // 1
		u[0] + ",female,30",   // 2
		stranger + ",male,30", // 3 not a friend
		u[1] + ",man,30",      // 4 bad gender
		"not-a-user,male,30",  // 5 bad user ID
		u[2] + ",male,200",    // 6 bad age
		u[3] + `,male,"3"0`,   // 7 bad quoting
		u[1] + ",male",        // 8 column missing
		u[3] + ",other,45",    // 9
		"",
	}, "\n")
	out := decodeUpload(t, s.upload(t, "?mode=partial", body))
	assert.Equal(t, "partial", out.Mode)
	assert.Equal(t, 2, out.Applied)
	assert.Equal(t, 6, out.RejectedCount)
	assert.Equal(t, []apiserver.RejectedRow{
		{Line: 3, UserID: stranger, Message: "no friend with this user ID on the channel"},
		{Line: 4, UserID: u[1], Message: `gender: "man" is not one of male, female, other, unknown`},
		{Line: 5, Message: `"not-a-user" is not a LINE user ID (U followed by 32 lower-case hex digits)`},
		{Line: 6, UserID: u[2], Message: `age: "200" is not a whole number from 0 to 150`},
		{Line: 7, UserID: u[3], Message: `not valid CSV: extraneous or missing " in quoted-field`},
		{Line: 8, UserID: u[1], Message: "the row has 2 columns; the header has 3"},
	}, out.Rejected)
	assert.Equal(t, map[string]string{"gender": "female", "age": "30"}, s.attrs(t, u[0]))
	assert.Empty(t, s.attrs(t, u[1]))
	assert.Empty(t, s.attrs(t, u[2]))
	assert.Equal(t, map[string]string{"gender": "other", "age": "45"}, s.attrs(t, u[3]))
}

func TestAttributesCSVAllModeRefusesBadFile(t *testing.T) {
	s := newCSVServer(t)
	u := s.friends(t, 3)
	decodeUpload(t, s.upload(t, "", "userId,region\n"+u[0]+",nagoya\n"))

	body := "userId,region,age\n" + u[0] + ",tokyo,30\n" + u[1] + ",osaka,30\n" + u[2] + ",kyoto,thirty\n"
	e := decodeError(t, s.upload(t, "?mode=all", body), http.StatusBadRequest)
	assert.Equal(t, "invalid", e.Code)
	assert.Equal(t, "1 row is not valid; nothing was applied", e.Message)
	require.Len(t, e.Problems, 1)
	assert.Equal(t, "line 4", e.Problems[0].Path)
	assert.Equal(t, "userId "+u[2]+`: age: "thirty" is not a whole number from 0 to 150`, e.Problems[0].Message)

	assert.Equal(t, map[string]string{"region": "nagoya"}, s.attrs(t, u[0]))
	assert.Empty(t, s.attrs(t, u[1]))
	assert.Empty(t, s.attrs(t, u[2]))
}

func TestAttributesCSVBadRequests(t *testing.T) {
	s := newCSVServer(t)
	u := s.friends(t, 1)
	path := fmt.Sprintf(csvPath, s.channel)
	good := "userId,region\n" + u[0] + ",tokyo\n"

	for name, header := range map[string]string{
		"missing userId":   "region,os",
		"empty column":     "userId,region,,os",
		"duplicate column": "userId,region,os,region",
	} {
		for _, mode := range []string{"", "?mode=all"} {
			e := decodeError(t, s.upload(t, mode, header+"\n"+u[0]+",a,b,c\n"), http.StatusBadRequest)
			assert.Equal(t, "invalid", e.Code, name)
			assert.Equal(t, "the CSV header is not valid; nothing was applied", e.Message, name)
			require.NotEmpty(t, e.Problems, name)
			assert.True(t, strings.HasPrefix(e.Problems[0].Path, "line 1"), "%s: %v", name, e.Problems)
		}
	}
	assert.Empty(t, s.attrs(t, u[0]))

	e := decodeError(t, s.upload(t, "?mode=everything", good), http.StatusBadRequest)
	assert.Contains(t, e.Message, `mode "everything" is not "partial" (the default) or "all"`)

	e = decodeError(t, s.do(t, http.MethodPost, path, "t", "multipart/form-data; boundary=x", strings.NewReader(good)), http.StatusBadRequest)
	assert.Contains(t, e.Message, "send the CSV file itself as the body")

	rec := s.do(t, http.MethodPost, path, "", "text/csv", strings.NewReader(good))
	assert.Equal(t, "unauthorized", decodeError(t, rec, http.StatusUnauthorized).Code)
	rec = s.do(t, http.MethodPost, path, "wrong", "text/csv", strings.NewReader(good))
	assert.Equal(t, "unauthorized", decodeError(t, rec, http.StatusUnauthorized).Code)

	rec = s.do(t, http.MethodPost, fmt.Sprintf(csvPath, s.channel+100), "t", "text/csv", strings.NewReader(good))
	assert.Equal(t, "not_found", decodeError(t, rec, http.StatusNotFound).Code)

	// A declared length over the upload limit is refused before reading.
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(good))
	req.Header.Set("Authorization", "Bearer t")
	req.ContentLength = 1 << 30
	rec = httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	assert.Equal(t, "too_large", decodeError(t, rec, http.StatusRequestEntityTooLarge).Code)

	assert.Empty(t, s.attrs(t, u[0]))
	decodeUpload(t, s.upload(t, "", good))
	assert.Equal(t, map[string]string{"region": "tokyo"}, s.attrs(t, u[0]))

	// The friend routes next to the upload's still find the friend.
	rec = s.do(t, http.MethodPost, fmt.Sprintf("/api/v1/channels/%d/friends/%s/tags", s.channel, u[0]), "t", "application/json", strings.NewReader(`{"add": ["vip"]}`))
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = s.do(t, http.MethodGet, fmt.Sprintf("/api/v1/channels/%d/friends/attributes.csv", s.channel), "t", "", nil)
	assert.Equal(t, "not_found", decodeError(t, rec, http.StatusNotFound).Code)
}

// A file over the 1 MiB limit of JSON bodies, streamed from a pipe without
// a length, lands whole; JSON bodies keep their limit.
func TestAttributesCSVLargeFile(t *testing.T) {
	s := newCSVServer(t)
	const n = 30000
	u := s.friends(t, n)
	ts := httptest.NewServer(s.h)
	defer ts.Close()

	pr, pw := io.Pipe()
	written := make(chan int64, 1)
	go func() {
		bw := bufio.NewWriter(pw)
		cw := &countingWriter{w: bw}
		fmt.Fprint(cw, "userId,gender,age,region,os,seq\n")
		genders := []string{"male", "female", "other", "unknown"}
		for i, id := range u {
			fmt.Fprintf(cw, "%s,%s,%d,region-%d,ios,%d\n", id, genders[i%4], i%151, i%47, i)
		}
		err := bw.Flush()
		written <- cw.n
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest(http.MethodPost, ts.URL+fmt.Sprintf(csvPath, s.channel)+"?mode=all", pr)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("Content-Type", "text/csv")
	resp, err := ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	size := <-written
	assert.Greater(t, size, int64(1<<20), "the file must be over the 1 MiB JSON limit")

	var out apiserver.AttributesUpload
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, apiserver.AttributesUpload{Mode: "all", Applied: n, Rejected: []apiserver.RejectedRow{}}, out)

	var landed int64
	require.NoError(t, s.store.DB.Model(&models.Friend{}).Where("channel_id = ? AND attributes LIKE ?", s.channel, `%"os":"ios"%`).Count(&landed).Error)
	assert.Equal(t, int64(n), landed)
	for _, i := range []int{0, 499, 500, n / 2, n - 1} {
		assert.Equal(t, map[string]string{"gender": []string{"male", "female", "other", "unknown"}[i%4], "age": fmt.Sprint(i % 151),
			"region": fmt.Sprintf("region-%d", i%47), "os": "ios", "seq": fmt.Sprint(i)}, s.attrs(t, u[i]), "row %d", i)
	}

	// The JSON routes keep the 1 MiB limit.
	big := `{"note": "` + strings.Repeat("x", 2<<20) + `"}`
	rec := s.do(t, http.MethodPatch, fmt.Sprintf("/api/v1/channels/%d/friends/%s/attributes", s.channel, u[0]), "t", "application/json", strings.NewReader(big))
	assert.Equal(t, "too_large", decodeError(t, rec, http.StatusRequestEntityTooLarge).Code)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
