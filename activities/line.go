package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
)

// LINE talks to the Messaging API (or the fake LINE server) with a channel's
// access token.
type LINE interface {
	Push(ctx context.Context, token, to string, messages []json.RawMessage, retryKey string) (requestID string, err error)
	Profile(ctx context.Context, token, userID string) (displayName string, err error)
}

// LineError is a non-2xx answer of the Messaging API.
type LineError struct {
	Status  int
	Message string
	// AcceptedRequestID is set on a 409: the ID of the request that LINE
	// already accepted with the same retry key.
	AcceptedRequestID string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("LINE answered %d: %s", e.Status, e.Message)
}

// MonthlyLimit reports whether LINE refused because the channel has used up
// its monthly message quota.
func (e *LineError) MonthlyLimit() bool {
	return e.Status == http.StatusTooManyRequests && strings.Contains(strings.ToLower(e.Message), "monthly limit")
}

// LineClient is the LINE implementation that uses the official SDK.
type LineClient struct {
	// Endpoint is the API's base URL: https://api.line.me, or the fake's.
	Endpoint string
	HTTP     *http.Client
}

var _ LINE = (*LineClient)(nil)

// api builds a client per call: the SDK keeps the request context in the
// client, so a shared one would race between concurrent activities.
func (c *LineClient) api(ctx context.Context, token string) (*messaging_api.MessagingApiAPI, error) {
	opts := []messaging_api.MessagingApiAPIOption{messaging_api.WithEndpoint(c.Endpoint)}
	if c.HTTP != nil {
		opts = append(opts, messaging_api.WithHTTPClient(c.HTTP))
	}
	api, err := messaging_api.NewMessagingApiAPI(token, opts...)
	if err != nil {
		return nil, err
	}
	return api.WithContext(ctx), nil
}

// Push sends messages to one user with the given retry key.
func (c *LineClient) Push(ctx context.Context, token, to string, messages []json.RawMessage, retryKey string) (string, error) {
	api, err := c.api(ctx, token)
	if err != nil {
		return "", err
	}
	msgs := make([]messaging_api.MessageInterface, len(messages))
	for i, m := range messages {
		msgs[i] = rawMessage(m)
	}
	res, _, err := api.PushMessageWithHttpInfo(&messaging_api.PushMessageRequest{To: to, Messages: msgs}, retryKey)
	if res == nil {
		return "", err
	}
	// A 2xx is a push LINE took, even if its answer's body did not decode.
	if res.StatusCode/100 == 2 {
		return res.Header.Get("X-Line-Request-Id"), nil
	}
	return "", lineError(res)
}

// Profile returns the user's display name.
func (c *LineClient) Profile(ctx context.Context, token, userID string) (string, error) {
	api, err := c.api(ctx, token)
	if err != nil {
		return "", err
	}
	res, p, err := api.GetProfileWithHttpInfo(userID)
	if res == nil {
		return "", err
	}
	if err != nil {
		return "", lineError(res)
	}
	return p.DisplayName, nil
}

func lineError(res *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
	}
	return &LineError{Status: res.StatusCode, Message: e.Message, AcceptedRequestID: res.Header.Get("X-Line-Accepted-Request-Id")}
}

// rawMessage sends a message object exactly as the scenario wrote it.
type rawMessage json.RawMessage

func (m rawMessage) GetType() string {
	var t struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(m, &t)
	return t.Type
}

func (m rawMessage) MarshalJSON() ([]byte, error) {
	if !json.Valid(m) {
		return nil, errors.New("message is not valid JSON")
	}
	return m, nil
}

// TestSender pushes a node's messages outside any enrollment: the admin
// API's test send. It is not a Temporal activity.
type TestSender struct {
	Store *models.Store
	LINE  LINE
}

// TestSend personalizes and pushes msgs to f now, with a fresh retry key.
func (t *TestSender) TestSend(ctx context.Context, ch *models.Channel, f *models.Friend, msgs []json.RawMessage) (string, error) {
	if NeedsDisplayName(msgs) {
		name, err := DisplayName(ctx, t.Store, t.LINE, ch, f)
		if err != nil {
			return "", err
		}
		msgs = Personalize(msgs, name)
	}
	id, err := t.LINE.Push(ctx, ch.AccessToken, f.UserID, msgs, uuid.NewString())
	var le *LineError
	if errors.As(err, &le) && le.Status < 500 && le.Status != http.StatusTooManyRequests {
		return "", stepcast.Errorf(stepcast.EINVALID, "LINE refused the test send: %s", le.Message)
	}
	if err != nil {
		return "", stepcast.Errorf(stepcast.EUNAVAILABLE, "LINE did not take the test send: %v", err)
	}
	return id, nil
}
