package fakeline

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests drive the fake only over HTTP, as another process would.

func TestControlPushesRoundTrip(t *testing.T) {
	_, srv := newFake(t)
	c := client(t, srv, token)
	key := uuid.NewString()
	_, err := c.PushMessage(pushOf(friend, text("one")), key)
	require.NoError(t, err)
	_, err = c.PushMessage(pushOf(friend2, text("two")), "")
	require.NoError(t, err)

	res, out := call(t, srv, http.MethodGet, "/fake/pushes", "", "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	var all []Push
	require.NoError(t, json.Unmarshal(out, &all))
	require.Len(t, all, 2)
	assert.Equal(t, "push", all[0].Kind)
	assert.Equal(t, []string{friend}, all[0].To)
	assert.Equal(t, key, all[0].RetryKey)
	assert.Equal(t, token, all[0].ChannelToken)
	assert.NotEmpty(t, all[0].RequestID)
	assert.False(t, all[0].At.IsZero())
	assert.Equal(t, "one", decodeMessage(t, all[0].Messages[0])["text"])

	res, out = call(t, srv, http.MethodGet, "/fake/pushes?to="+friend2, "", "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	var some []Push
	require.NoError(t, json.Unmarshal(out, &some))
	require.Len(t, some, 1)
	assert.Equal(t, "two", decodeMessage(t, some[0].Messages[0])["text"])

	res, _ = call(t, srv, http.MethodDelete, "/fake/pushes", "", "")
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	res, out = call(t, srv, http.MethodGet, "/fake/pushes", "", "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.JSONEq(t, "[]", string(out), "an empty list, not null")

	_, err = c.PushMessage(pushOf(friend, text("one")), key)
	require.NoError(t, err, "the reset forgot the retry key")
}

func TestControlFaults(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)

	res, out := call(t, srv, http.MethodPost, "/fake/faults", "", `{"status":503,"count":1,"delay":"50ms","message":"maintenance"}`)
	require.Equal(t, http.StatusNoContent, res.StatusCode, "body: %s", out)
	start := time.Now()
	res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), "")
	require.Error(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)

	// A bare number is milliseconds.
	res, _ = call(t, srv, http.MethodPost, "/fake/faults", "", `{"delay":60,"count":1}`)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	start = time.Now()
	_, err = c.PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond)

	res, _ = call(t, srv, http.MethodPost, "/fake/faults", "", `{"status":500}`)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	res, _, err = c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), "")
	require.Error(t, err)
	assert.Equal(t, http.StatusInternalServerError, res.StatusCode)
	res, _ = call(t, srv, http.MethodDelete, "/fake/faults", "", "")
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	_, err = c.PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)

	res, _ = call(t, srv, http.MethodPost, "/fake/faults", "", `{"status":500,"count":1,"accepted":true}`)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	before := len(s.Pushes())
	_, err = c.PushMessage(pushOf(friend, text("hi")), "")
	require.Error(t, err)
	assert.Len(t, s.Pushes(), before+1, "accepted faults record the push")
}

func TestControlRejectsBadFaults(t *testing.T) {
	s, srv := newFake(t)
	for _, body := range []string{
		`{"status":200}`,
		`{"status":500,"count":-1}`,
		`{"delay":"soon"}`,
		`{"delay":"-1s"}`,
		`{"delay":true}`,
		`{}`,
		`{"status":500,"delay_ms":10}`,
		`not json`,
	} {
		res, out := call(t, srv, http.MethodPost, "/fake/faults", "", body)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, "body %s", body)
		assert.NotEmpty(t, decodeError(t, out).Message)
	}
	_, err := client(t, srv, token).PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err, "no fault was injected")
	assert.Len(t, s.Pushes(), 1)
}

func TestControlQuota(t *testing.T) {
	_, srv := newFake(t)
	c := client(t, srv, token)

	res, out := call(t, srv, http.MethodPut, "/fake/quota", "", `{"limit":1}`)
	require.Equal(t, http.StatusNoContent, res.StatusCode, "body: %s", out)
	q, err := c.GetMessageQuota()
	require.NoError(t, err)
	assert.Equal(t, int64(1), q.Value)

	_, err = c.PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)
	res, _, err = c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), "")
	require.Error(t, err)
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)

	res, _ = call(t, srv, http.MethodPut, "/fake/quota", "", `{"limit":0}`)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	_, err = c.PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)

	for _, body := range []string{`{}`, `{"limit":-5}`, `{"limit":"ten"}`} {
		res, _ := call(t, srv, http.MethodPut, "/fake/quota", "", body)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, "body %s", body)
	}
}

func TestControlProfiles(t *testing.T) {
	_, srv := newFake(t)
	res, out := call(t, srv, http.MethodPut, "/fake/profiles/"+friend, "", `{"displayName":"Hanako"}`)
	require.Equal(t, http.StatusNoContent, res.StatusCode, "body: %s", out)

	p, err := client(t, srv, token).GetProfile(friend)
	require.NoError(t, err)
	assert.Equal(t, "Hanako", p.DisplayName)

	res, _ = call(t, srv, http.MethodPut, "/fake/profiles/U123", "", `{"displayName":"Hanako"}`)
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	res, _ = call(t, srv, http.MethodPut, "/fake/profiles/"+friend, "", `{"displayName":""}`)
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
}
