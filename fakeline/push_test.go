package fakeline

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPushAcceptedIsRecorded(t *testing.T) {
	s, srv := newFake(t)
	key := uuid.NewString()

	res, out, err := client(t, srv, token).PushMessageWithHttpInfo(pushOf(friend, text("hi"), messaging_api.StickerMessage{PackageId: "446", StickerId: "1988"}), key)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Len(t, out.SentMessages, 2)
	assert.NotEmpty(t, out.SentMessages[0].Id)
	assert.NotEqual(t, out.SentMessages[0].Id, out.SentMessages[1].Id)
	assert.NotEmpty(t, out.SentMessages[0].QuoteToken, "text messages can be quoted")
	requestID := res.Header.Get("X-Line-Request-Id")
	require.NotEmpty(t, requestID)

	pushes := s.Pushes()
	require.Len(t, pushes, 1)
	p := pushes[0]
	assert.Equal(t, "push", p.Kind)
	assert.Equal(t, []string{friend}, p.To)
	assert.Equal(t, key, p.RetryKey)
	assert.Equal(t, token, p.ChannelToken)
	assert.Equal(t, requestID, p.RequestID)
	assert.WithinDuration(t, time.Now(), p.At, 5*time.Second)
	require.Len(t, p.Messages, 2)
	assert.Equal(t, map[string]any{"type": "text", "text": "hi"}, decodeMessage(t, p.Messages[0]))
	assert.Equal(t, "sticker", decodeMessage(t, p.Messages[1])["type"])
}

func TestPushWithoutRetryKeyIsAccepted(t *testing.T) {
	s, srv := newFake(t)
	// The SDK sends an empty X-Line-Retry-Key header when given no key.
	_, err := client(t, srv, token).PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)
	_, err = client(t, srv, token).PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)
	pushes := s.Pushes()
	require.Len(t, pushes, 2, "without a key nothing is deduplicated")
	assert.Empty(t, pushes[0].RetryKey)
}

func TestSameRetryKeyTwiceIsConflict(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	key := uuid.NewString()

	first, firstOut, err := c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), key)
	require.NoError(t, err)

	second, _, err := c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), key)
	require.Error(t, err)
	require.Equal(t, http.StatusConflict, second.StatusCode)
	assert.Equal(t, first.Header.Get("X-Line-Request-Id"), second.Header.Get("X-Line-Accepted-Request-Id"))
	assert.NotEmpty(t, second.Header.Get("X-Line-Request-Id"))
	var body errorResponse
	require.NoError(t, json.NewDecoder(second.Body).Decode(&body))
	assert.Equal(t, "The retry key is already accepted", body.Message)
	require.Len(t, body.SentMessages, 1, "LINE repeats what the first request sent")
	assert.Equal(t, firstOut.SentMessages[0].Id, body.SentMessages[0].ID)

	assert.Len(t, s.Pushes(), 1)
}

func TestRetryKeysBelongToOneChannel(t *testing.T) {
	s, srv := newFake(t)
	key := uuid.NewString()
	_, err := client(t, srv, "channel-a").PushMessage(pushOf(friend, text("hi")), key)
	require.NoError(t, err)
	_, err = client(t, srv, "channel-b").PushMessage(pushOf(friend, text("hi")), key)
	require.NoError(t, err, "another channel's token has its own retry keys")
	assert.Len(t, s.Pushes(), 2)
}

func TestRejectedRequestDoesNotUseUpRetryKey(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	key := uuid.NewString()

	res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, text("")), key)
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)

	s.InjectFault(Fault{Status: http.StatusInternalServerError, Count: 1})
	res, _, err = c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), key)
	require.Error(t, err)
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)

	_, err = c.PushMessage(pushOf(friend, text("hi")), key)
	require.NoError(t, err)
	assert.Len(t, s.Pushes(), 1)
}

func TestTextMessageWithoutTextIsRejected(t *testing.T) {
	s, srv := newFake(t)
	// The SDK sends "text":"" for an unset text.
	res, _, err := client(t, srv, token).PushMessageWithHttpInfo(pushOf(friend, text("hi"), messaging_api.TextMessage{}), "")
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	var body errorResponse
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	assert.Equal(t, "The request body has 1 error(s)", body.Message)
	assert.Equal(t, []errorDetail{{Message: "Length must be between 1 and 5000", Property: "messages[1].text"}}, body.Details)
	assert.Empty(t, s.Pushes())
}

func TestSixMessagesAreRejected(t *testing.T) {
	s, srv := newFake(t)
	msgs := make([]messaging_api.MessageInterface, 6)
	for i := range msgs {
		msgs[i] = text("hi")
	}
	res, _, err := client(t, srv, token).PushMessageWithHttpInfo(pushOf(friend, msgs...), "")
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	var body errorResponse
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	assert.Equal(t, []errorDetail{{Message: "Size must be between 1 and 5", Property: "messages"}}, body.Details)
	assert.Empty(t, s.Pushes())

	_, err = client(t, srv, token).PushMessage(pushOf(friend, msgs[:5]...), "")
	require.NoError(t, err, "five is the most LINE takes, and it takes five")
}

func TestRetryKeyMustBeUUID(t *testing.T) {
	s, srv := newFake(t)
	res, _, err := client(t, srv, token).PushMessageWithHttpInfo(pushOf(friend, text("hi")), "not-a-uuid")
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	var body errorResponse
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	assert.Equal(t, "The value for the 'X-Line-Retry-Key' header is invalid", body.Message)
	assert.Empty(t, s.Pushes())
}

func TestMissingAuthorizationIsUnauthorized(t *testing.T) {
	s, srv := newFake(t)
	body := `{"to":"` + friend + `","messages":[{"type":"text","text":"hi"}]}`

	res, out := call(t, srv, http.MethodPost, "/v2/bot/message/push", "", body)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	assert.Equal(t, "Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'", decodeError(t, out).Message)

	for _, auth := range []string{"Bearer", "Bearer  ", "Basic dXNlcjpwYXNz", "tok"} {
		res, _ := call(t, srv, http.MethodPost, "/v2/bot/message/push", auth, body)
		assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "Authorization: %q", auth)
	}
	assert.Empty(t, s.Pushes())

	res, _ = call(t, srv, http.MethodPost, "/v2/bot/message/push", "Bearer x", body)
	assert.Equal(t, http.StatusOK, res.StatusCode, "any non-empty token will do")
}

func TestValidMessagesOfEachKindAreAccepted(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	uri := &messaging_api.UriAction{Label: "Open", Uri: "https://example.com/shop"}
	bubble := messaging_api.FlexBubble{
		Hero: &messaging_api.FlexImage{Url: "https://example.com/hero.png", Size: "full"},
		Body: &messaging_api.FlexBox{
			Layout: messaging_api.FlexBoxLAYOUT_VERTICAL,
			Contents: []messaging_api.FlexComponentInterface{
				&messaging_api.FlexText{Text: "Welcome", Weight: messaging_api.FlexTextWEIGHT_BOLD},
				&messaging_api.FlexButton{Action: uri},
			},
		},
	}
	cases := map[string]messaging_api.MessageInterface{
		"sticker":     messaging_api.StickerMessage{PackageId: "446", StickerId: "1988"},
		"image":       messaging_api.ImageMessage{OriginalContentUrl: "https://example.com/a.png", PreviewImageUrl: "https://example.com/a-small.png"},
		"flex bubble": messaging_api.FlexMessage{AltText: "Welcome", Contents: &bubble},
		"flex carousel": messaging_api.FlexMessage{AltText: "Pick one", Contents: &messaging_api.FlexCarousel{
			Contents: []messaging_api.FlexBubble{bubble, bubble},
		}},
		"buttons template": messaging_api.TemplateMessage{AltText: "Menu", Template: &messaging_api.ButtonsTemplate{
			Text: "Choose",
			Actions: []messaging_api.ActionInterface{
				&messaging_api.MessageAction{Label: "Yes", Text: "yes"},
				&messaging_api.PostbackAction{Label: "Later", Data: "step=3"},
				uri,
			},
		}},
		"confirm template": messaging_api.TemplateMessage{AltText: "Sure?", Template: &messaging_api.ConfirmTemplate{
			Text: "Sure?",
			Actions: []messaging_api.ActionInterface{
				&messaging_api.MessageAction{Label: "Yes", Text: "yes"},
				&messaging_api.MessageAction{Label: "No", Text: "no"},
			},
		}},
		"text with quick reply": messaging_api.TextMessage{Text: "Coupon?", QuickReply: &messaging_api.QuickReply{
			Items: []messaging_api.QuickReplyItem{{Action: &messaging_api.PostbackAction{Label: "Yes", Data: "coupon=1"}}},
		}},
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			s.Reset()
			res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, msg), "")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Len(t, s.Pushes(), 1)
		})
	}
}

func TestInvalidFlexIsRejected(t *testing.T) {
	_, srv := newFake(t)
	c := client(t, srv, token)
	cases := map[string]struct {
		msg  messaging_api.MessageInterface
		want errorDetail
	}{
		"image without url": {
			msg: messaging_api.FlexMessage{AltText: "x", Contents: &messaging_api.FlexBubble{
				Hero: &messaging_api.FlexImage{},
			}},
			want: errorDetail{Message: "must be a valid uri", Property: "messages[0].contents.hero.url"},
		},
		"button without action target": {
			msg: messaging_api.FlexMessage{AltText: "x", Contents: &messaging_api.FlexBubble{
				Body: &messaging_api.FlexBox{Layout: messaging_api.FlexBoxLAYOUT_VERTICAL, Contents: []messaging_api.FlexComponentInterface{
					&messaging_api.FlexButton{Action: &messaging_api.UriAction{Label: "Open"}},
				}},
			}},
			want: errorDetail{Message: "must be specified", Property: "messages[0].contents.body.contents[0].action.uri"},
		},
		"bad layout": {
			msg: messaging_api.FlexMessage{AltText: "x", Contents: &messaging_api.FlexBubble{
				Body: &messaging_api.FlexBox{Layout: "diagonal", Contents: []messaging_api.FlexComponentInterface{}},
			}},
			want: errorDetail{Message: "must be one of the following values: [horizontal, vertical, baseline]", Property: "messages[0].contents.body.layout"},
		},
		"no alt text": {
			msg:  messaging_api.FlexMessage{Contents: &messaging_api.FlexBubble{}},
			want: errorDetail{Message: "Length must be between 1 and 1500", Property: "messages[0].altText"},
		},
		"no contents": {
			msg:  messaging_api.FlexMessage{AltText: "x"},
			want: errorDetail{Message: "must be specified", Property: "messages[0].contents"},
		},
		"thirteen bubbles": {
			msg:  messaging_api.FlexMessage{AltText: "x", Contents: &messaging_api.FlexCarousel{Contents: make([]messaging_api.FlexBubble, 13)}},
			want: errorDetail{Message: "Size must be between 1 and 12", Property: "messages[0].contents.contents"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, tc.msg), "")
			require.Error(t, err)
			require.Equal(t, http.StatusBadRequest, res.StatusCode)
			var body errorResponse
			require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
			assert.Contains(t, body.Details, tc.want)
		})
	}
}

func TestMonthlyQuota(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	s.SetQuota(5)

	q, err := c.GetMessageQuota()
	require.NoError(t, err)
	assert.Equal(t, messaging_api.QuotaType_LIMITED, q.Type)
	assert.Equal(t, int64(5), q.Value)

	_, err = c.PushMessage(pushOf(friend, text("1"), text("2")), "")
	require.NoError(t, err)
	// A multicast costs one message per recipient.
	_, err = c.Multicast(&messaging_api.MulticastRequest{To: []string{friend, friend2}, Messages: []messaging_api.MessageInterface{text("3")}}, "")
	require.NoError(t, err)

	res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, text("4"), text("5")), uuid.NewString())
	require.Error(t, err)
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	var body errorResponse
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	assert.Equal(t, "You have reached your monthly limit.", body.Message)

	_, err = c.PushMessage(pushOf(friend, text("5")), "")
	require.NoError(t, err, "one message still fits")

	used, err := c.GetMessageQuotaConsumption()
	require.NoError(t, err)
	assert.Equal(t, int64(5), used.TotalUsage)
	assert.Len(t, s.Pushes(), 3)

	s.SetQuota(0)
	q, err = c.GetMessageQuota()
	require.NoError(t, err)
	assert.Equal(t, messaging_api.QuotaType_NONE, q.Type)
	_, err = c.PushMessage(pushOf(friend, text("6")), "")
	require.NoError(t, err, "no limit")
}

func TestMulticastIsRecordedPerRecipient(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	key := uuid.NewString()
	req := &messaging_api.MulticastRequest{To: []string{friend, friend2}, Messages: []messaging_api.MessageInterface{text("hi")}}

	res, _, err := c.MulticastWithHttpInfo(req, key)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)

	res, _, err = c.MulticastWithHttpInfo(req, key)
	require.Error(t, err)
	require.Equal(t, http.StatusConflict, res.StatusCode)

	require.Len(t, s.Pushes(), 1)
	assert.Equal(t, "multicast", s.Pushes()[0].Kind)
	assert.Len(t, s.PushesTo(friend), 1)
	assert.Len(t, s.PushesTo(friend2), 1)
	assert.Empty(t, s.PushesTo("U00000000000000000000000000000000"))

	// Multicast is for users only.
	res, _, err = c.MulticastWithHttpInfo(&messaging_api.MulticastRequest{To: []string{group}, Messages: []messaging_api.MessageInterface{text("hi")}}, "")
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
}

func TestFaultThenSuccess(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	s.InjectFault(Fault{Status: http.StatusInternalServerError, Count: 1})

	res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), "")
	require.Error(t, err)
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)
	var body errorResponse
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	assert.Equal(t, "Internal Server Error", body.Message)
	assert.Empty(t, s.Pushes(), "a faulted request is not recorded")

	_, err = c.PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)
	assert.Len(t, s.Pushes(), 1)
}

func TestFaultWithoutCountLastsUntilCleared(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	s.InjectFault(Fault{Status: http.StatusTooManyRequests})
	for range 3 {
		res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), "")
		require.Error(t, err)
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
		var body errorResponse
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		assert.Equal(t, "Too Many Requests", body.Message)
	}
	s.ClearFaults()
	_, err := c.PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)
	assert.Len(t, s.Pushes(), 1)
}

func TestFaultsApplyInTurnWithTheirMessage(t *testing.T) {
	s, srv := newFake(t)
	s.InjectFault(Fault{Status: http.StatusServiceUnavailable, Count: 1, Message: "down for maintenance"})
	s.InjectFault(Fault{Status: http.StatusConflict, Count: 1})
	c := client(t, srv, token)

	for _, want := range []struct {
		status int
		msg    string
	}{{503, "down for maintenance"}, {409, "Conflict"}} {
		res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), "")
		require.Error(t, err)
		require.Equal(t, want.status, res.StatusCode)
		var body errorResponse
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		assert.Equal(t, want.msg, body.Message)
	}
	_, err := c.PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)
}

func TestInvalidRequestDoesNotUseUpFault(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	s.InjectFault(Fault{Status: http.StatusInternalServerError, Count: 1})

	res, _, err := c.PushMessageWithHttpInfo(pushOf("nobody", text("hi")), "")
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, res.StatusCode, "LINE would refuse it before any fault")

	res, _, err = c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), "")
	require.Error(t, err)
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)
}

func TestDelayIsRespected(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	const delay = 200 * time.Millisecond
	s.InjectFault(Fault{Delay: delay, Count: 1})

	start := time.Now()
	_, err := c.PushMessage(pushOf(friend, text("slow")), "")
	require.NoError(t, err, "a delay alone still answers normally")
	assert.GreaterOrEqual(t, time.Since(start), delay)
	assert.Len(t, s.Pushes(), 1)

	start = time.Now()
	_, err = c.PushMessage(pushOf(friend, text("fast")), "")
	require.NoError(t, err)
	assert.Less(t, time.Since(start), delay, "the fault was used up")
}

func TestDelayEndsWhenClientGivesUp(t *testing.T) {
	s, srv := newFake(t)
	s.InjectFault(Fault{Delay: 10 * time.Second, Count: 1})
	c := client(t, srv, token, messaging_api.WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))

	start := time.Now()
	_, err := c.PushMessage(pushOf(friend, text("hi")), "")
	require.Error(t, err)
	srv.Close() // waits for the handler to return
	assert.Less(t, time.Since(start), 5*time.Second, "the fake stopped waiting when the client left")
	assert.Empty(t, s.Pushes(), "a request abandoned during the delay is not recorded")
}

// An Accepted fault is LINE sending the message while the client sees an
// error: the retry must get 409, and the message stays sent once.
func TestAcceptedFaultThenRetryIsConflict(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	key := uuid.NewString()
	s.InjectFault(Fault{Status: http.StatusInternalServerError, Count: 1, Accepted: true})

	res, _, err := c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), key)
	require.Error(t, err)
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)
	require.Len(t, s.Pushes(), 1)

	res, _, err = c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), key)
	require.Error(t, err)
	require.Equal(t, http.StatusConflict, res.StatusCode)
	assert.Equal(t, s.Pushes()[0].RequestID, res.Header.Get("X-Line-Accepted-Request-Id"))
	assert.Len(t, s.Pushes(), 1)
}

func TestProfile(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)

	p, err := c.GetProfile(friend)
	require.NoError(t, err)
	assert.Equal(t, friend, p.UserId)
	assert.Equal(t, "LINE User cdef", p.DisplayName)
	assert.Equal(t, "ja", p.Language)

	s.SetProfile(friend, "山田 太郎")
	p, err = c.GetProfile(friend)
	require.NoError(t, err)
	assert.Equal(t, "山田 太郎", p.DisplayName)

	res, _, err := c.GetProfileWithHttpInfo("U123")
	require.Error(t, err)
	require.Equal(t, http.StatusNotFound, res.StatusCode)

	res, _ = call(t, srv, http.MethodGet, "/v2/bot/profile/"+friend, "", "")
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

func TestBotInfo(t *testing.T) {
	_, srv := newFake(t)
	info, err := client(t, srv, token).GetBotInfo()
	require.NoError(t, err)
	assert.Regexp(t, userIDPattern, info.UserId)
	assert.Equal(t, messaging_api.BotInfoResponseCHAT_MODE_BOT, info.ChatMode)
}

func TestConcurrentPushes(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	shared := uuid.NewString()
	const distinct, sharing = 40, 10

	var wg sync.WaitGroup
	codes := make(chan int, distinct+sharing)
	for i := range distinct + sharing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := uuid.NewString()
			if i < sharing {
				key = shared
			}
			res, _, _ := c.PushMessageWithHttpInfo(pushOf(friend, text("hi")), key)
			codes <- res.StatusCode
			_ = s.Pushes()
			_ = s.PushesTo(friend)
		}()
	}
	wg.Wait()
	close(codes)

	count := map[int]int{}
	for code := range codes {
		count[code]++
	}
	assert.Equal(t, map[int]int{http.StatusOK: distinct + 1, http.StatusConflict: sharing - 1}, count)
	assert.Len(t, s.Pushes(), distinct+1)

	used, err := c.GetMessageQuotaConsumption()
	require.NoError(t, err)
	assert.Equal(t, int64(distinct+1), used.TotalUsage)
}

func TestPushesReturnsCopies(t *testing.T) {
	s, srv := newFake(t)
	_, err := client(t, srv, token).PushMessage(pushOf(friend, text("hi")), "")
	require.NoError(t, err)

	got := s.Pushes()
	got[0].To[0] = "changed"
	got[0].Messages[0][0] = 'X'
	assert.Equal(t, friend, s.Pushes()[0].To[0])
	assert.Equal(t, "text", decodeMessage(t, s.Pushes()[0].Messages[0])["type"])
}

func TestResetForgetsWhatHappened(t *testing.T) {
	s, srv := newFake(t)
	c := client(t, srv, token)
	key := uuid.NewString()
	s.SetQuota(10)
	s.SetProfile(friend, "Taro")
	_, err := c.PushMessage(pushOf(friend, text("hi")), key)
	require.NoError(t, err)
	s.InjectFault(Fault{Status: http.StatusInternalServerError})

	s.Reset()
	assert.Empty(t, s.Pushes())
	_, err = c.PushMessage(pushOf(friend, text("hi")), key)
	require.NoError(t, err, "faults and retry keys are gone")
	used, err := c.GetMessageQuotaConsumption()
	require.NoError(t, err)
	assert.Equal(t, int64(1), used.TotalUsage, "usage started again")

	q, err := c.GetMessageQuota()
	require.NoError(t, err)
	assert.Equal(t, int64(10), q.Value, "the limit stays")
	p, err := c.GetProfile(friend)
	require.NoError(t, err)
	assert.Equal(t, "Taro", p.DisplayName, "profiles stay")
}
