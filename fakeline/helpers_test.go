package fakeline

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"github.com/stretchr/testify/require"
)

const (
	token   = "test-channel-token"
	friend  = "U0123456789abcdef0123456789abcdef"
	friend2 = "Ufedcba9876543210fedcba9876543210"
	group   = "C0123456789abcdef0123456789abcdef"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

// newFake starts the fake on a loopback httptest server.
func newFake(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New()
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

// client is LINE's own SDK pointed at the fake.
func client(t *testing.T, srv *httptest.Server, tok string, opts ...messaging_api.MessagingApiAPIOption) *messaging_api.MessagingApiAPI {
	t.Helper()
	c, err := messaging_api.NewMessagingApiAPI(tok, append([]messaging_api.MessagingApiAPIOption{messaging_api.WithEndpoint(srv.URL)}, opts...)...)
	require.NoError(t, err)
	return c
}

func text(s string) messaging_api.TextMessage {
	return messaging_api.TextMessage{Text: s}
}

func pushOf(to string, msgs ...messaging_api.MessageInterface) *messaging_api.PushMessageRequest {
	return &messaging_api.PushMessageRequest{To: to, Messages: msgs}
}

// call sends a raw request, for what the SDK cannot express.
func call(t *testing.T, srv *httptest.Server, method, path, auth, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, out
}

func decodeError(t *testing.T, body []byte) errorResponse {
	t.Helper()
	var e errorResponse
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	return e
}

// decodeMessage turns a recorded message back into a map for assertions.
func decodeMessage(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}
