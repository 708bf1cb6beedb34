package fakeline

import (
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pushBody wraps messages (JSON) in a push to friend.
func pushBody(messages ...string) string {
	return `{"to":"` + friend + `","messages":[` + strings.Join(messages, ",") + `]}`
}

func TestRequestsLINEWouldRefuse(t *testing.T) {
	flex := func(contents string) string {
		return `{"type":"flex","altText":"x","contents":` + contents + `}`
	}
	template := func(tmpl string) string {
		return `{"type":"template","altText":"x","template":` + tmpl + `}`
	}
	msg := `{"type":"message","label":"l","text":"t"}`

	cases := []struct {
		name    string
		path    string
		body    string
		message string        // the top-level message, when it matters
		want    []errorDetail // all of them, in order
	}{
		{
			name:    "text message without text",
			body:    pushBody(`{"type":"text","text":"hi"}`, `{"type":"text"}`),
			message: "The request body has 1 error(s)",
			want:    []errorDetail{{Message: "must be specified", Property: "messages[1].text"}},
		},
		{
			name:    "two problems",
			body:    `{"to":"","messages":[{"type":"text"}]}`,
			message: "The request body has 2 error(s)",
			want: []errorDetail{
				{Message: "must be specified", Property: "messages[0].text"},
				{Message: patternMessages[chatIDPattern], Property: "to"},
			},
		},
		{
			name: "text too long",
			body: pushBody(`{"type":"text","text":"` + strings.Repeat("a", 5001) + `"}`),
			want: []errorDetail{{Message: "Length must be between 1 and 5000", Property: "messages[0].text"}},
		},
		{
			name: "no messages",
			body: pushBody(),
			want: []errorDetail{{Message: "Size must be between 1 and 5", Property: "messages"}},
		},
		{
			name: "no recipient",
			body: `{"messages":[{"type":"text","text":"hi"}]}`,
			want: []errorDetail{{Message: "must be specified", Property: "to"}},
		},
		{
			name: "recipient of the wrong type",
			body: `{"to":["` + friend + `"],"messages":[{"type":"text","text":"hi"}]}`,
			want: []errorDetail{{Message: "must be a string", Property: "to"}},
		},
		{
			name: "unknown message type",
			body: pushBody(`{"type":"txt","text":"hi"}`),
			want: []errorDetail{{Message: "must be one of the following values: [audio, coupon, flex, image, imagemap, location, sticker, template, text, textV2, video]", Property: "messages[0].type"}},
		},
		{
			name: "message without type",
			body: pushBody(`{"text":"hi"}`),
			want: []errorDetail{{Message: "must be specified", Property: "messages[0].type"}},
		},
		{
			name: "sticker without ids",
			body: pushBody(`{"type":"sticker"}`),
			want: []errorDetail{
				{Message: "must be specified", Property: "messages[0].packageId"},
				{Message: "must be specified", Property: "messages[0].stickerId"},
			},
		},
		{
			name: "image over http",
			body: pushBody(`{"type":"image","originalContentUrl":"http://example.com/a.png","previewImageUrl":"https://example.com/b.png"}`),
			want: []errorDetail{{Message: "must be an https URL", Property: "messages[0].originalContentUrl"}},
		},
		{
			name: "bubble body that is not a box",
			body: pushBody(flex(`{"type":"bubble","body":{"type":"text","text":"hi"}}`)),
			want: []errorDetail{
				{Message: "must be specified", Property: "messages[0].contents.body.contents"},
				{Message: "must be specified", Property: "messages[0].contents.body.layout"},
				{Message: `must be "box"`, Property: "messages[0].contents.body.type"},
			},
		},
		{
			name: "flex container of unknown type",
			body: pushBody(flex(`{"type":"bubbles"}`)),
			want: []errorDetail{{Message: "must be one of the following values: [bubble, carousel]", Property: "messages[0].contents.type"}},
		},
		{
			name: "nested flex component problems",
			body: pushBody(flex(`{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[
				{"type":"box","layout":"horizontal","contents":[{"type":"icon"},{"type":"separator","margin":"md"}]},
				{"type":"button","action":{"type":"uri","label":"Go"}},
				{"type":"widget"}
			]}}`)),
			want: []errorDetail{
				{Message: "must be specified", Property: "messages[0].contents.body.contents[0].contents[0].url"},
				{Message: "must be specified", Property: "messages[0].contents.body.contents[1].action.uri"},
				{Message: "must be one of the following values: [box, button, filler, icon, image, separator, span, text, video]", Property: "messages[0].contents.body.contents[2].type"},
			},
		},
		{
			name: "carousel of something other than bubbles",
			body: pushBody(flex(`{"type":"carousel","contents":[{"type":"carousel","contents":[]}]}`)),
			want: []errorDetail{{Message: `must be "bubble"`, Property: "messages[0].contents.contents[0].type"}},
		},
		{
			name: "template without alt text",
			body: pushBody(`{"type":"template","template":{"type":"confirm","text":"ok?","actions":[` + msg + `,` + msg + `]}}`),
			want: []errorDetail{{Message: "must be specified", Property: "messages[0].altText"}},
		},
		{
			name: "buttons template with five actions",
			body: pushBody(template(`{"type":"buttons","text":"t","actions":[` + strings.Repeat(msg+",", 4) + msg + `]}`)),
			want: []errorDetail{{Message: "Size must be between 1 and 4", Property: "messages[0].template.actions"}},
		},
		{
			name: "confirm template with one action",
			body: pushBody(template(`{"type":"confirm","text":"t","actions":[` + msg + `]}`)),
			want: []errorDetail{{Message: "Size must be between 2 and 2", Property: "messages[0].template.actions"}},
		},
		{
			name: "carousel column action without its target",
			body: pushBody(template(`{"type":"carousel","columns":[{"text":"t","actions":[{"type":"postback","label":"p"}]}]}`)),
			want: []errorDetail{{Message: "must be specified", Property: "messages[0].template.columns[0].actions[0].data"}},
		},
		{
			name: "action of unknown type in a quick reply",
			body: pushBody(`{"type":"text","text":"hi","quickReply":{"items":[{"type":"action","action":{"type":"teleport"}}]}}`),
			want: []errorDetail{{Message: "must be one of the following values: [camera, cameraRoll, clipboard, datetimepicker, location, message, postback, richmenuswitch, uri]", Property: "messages[0].quickReply.items[0].action.type"}},
		},
		{
			name: "text v2 mention without mentionee",
			body: pushBody(`{"type":"textV2","text":"Hi {who}","substitution":{"who":{"type":"mention"}}}`),
			want: []errorDetail{{Message: "must be specified", Property: "messages[0].substitution.who.mentionee"}},
		},
		{
			name: "multicast to a group",
			path: "/v2/bot/message/multicast",
			body: `{"to":["` + friend + `","` + group + `"],"messages":[{"type":"text","text":"hi"}]}`,
			want: []errorDetail{{Message: patternMessages[userIDPattern], Property: "to[1]"}},
		},
		{
			name: "multicast to nobody",
			path: "/v2/bot/message/multicast",
			body: `{"to":[],"messages":[{"type":"text","text":"hi"}]}`,
			want: []errorDetail{{Message: "Size must be between 1 and 500", Property: "to"}},
		},
		{
			name: "multicast to too many",
			path: "/v2/bot/message/multicast",
			body: `{"to":[` + strings.TrimSuffix(strings.Repeat(`"`+friend+`",`, 501), ",") + `],"messages":[{"type":"text","text":"hi"}]}`,
			want: []errorDetail{{Message: "Size must be between 1 and 500", Property: "to"}},
		},
	}
	s, srv := newFake(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/v2/bot/message/push"
			}
			res, out := call(t, srv, http.MethodPost, path, "Bearer "+token, tc.body)
			require.Equal(t, http.StatusBadRequest, res.StatusCode, "body: %s", out)
			assert.NotEmpty(t, res.Header.Get("X-Line-Request-Id"))
			got := decodeError(t, out)
			if tc.message != "" {
				assert.Equal(t, tc.message, got.Message)
			}
			assert.Equal(t, tc.want, got.Details)
		})
	}
	assert.Empty(t, s.Pushes(), "nothing refused is recorded")
}

func TestRequestsLINEWouldAccept(t *testing.T) {
	cases := map[string]struct{ path, body string }{
		"push to a group":  {body: `{"to":"` + group + `","messages":[{"type":"text","text":"hi"}]}`},
		"nulls as absent":  {body: `{"to":"` + friend + `","messages":[{"type":"text","text":"hi","quickReply":null,"emojis":null}],"notificationDisabled":false,"customAggregationUnits":null}`},
		"five messages":    {body: pushBody(strings.TrimSuffix(strings.Repeat(`{"type":"text","text":"hi"},`, 5), ","))},
		"location":         {body: pushBody(`{"type":"location","title":"Shop","address":"Tokyo","latitude":35.68,"longitude":139.76}`)},
		"text v2 mention":  {body: pushBody(`{"type":"textV2","text":"Hi {who}","substitution":{"who":{"type":"mention","mentionee":{"type":"user","userId":"` + friend + `"}}}}`)},
		"box with nothing": {body: pushBody(`{"type":"flex","altText":"x","contents":{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[]}}}`)},
		"image carousel": {body: pushBody(`{"type":"template","altText":"x","template":{"type":"image_carousel","columns":[
			{"imageUrl":"https://example.com/1.png","action":{"type":"uri","label":"Open","uri":"https://example.com/1"}}]}}`)},
		"uri action with tel": {body: pushBody(`{"type":"template","altText":"x","template":{"type":"buttons","text":"Call us","actions":[
			{"type":"uri","label":"Call","uri":"tel:0312345678"}]}}`)},
		"multicast": {path: "/v2/bot/message/multicast", body: `{"to":["` + friend + `","` + friend2 + `"],"messages":[{"type":"text","text":"hi"}]}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, srv := newFake(t)
			path := tc.path
			if path == "" {
				path = "/v2/bot/message/push"
			}
			res, out := call(t, srv, http.MethodPost, path, "Bearer "+token, tc.body)
			require.Equal(t, http.StatusOK, res.StatusCode, "body: %s", out)
			require.Len(t, s.Pushes(), 1)
		})
	}
}

func TestRecordedMessagesAreAsSent(t *testing.T) {
	s, srv := newFake(t)
	// Defaults in the document (notificationDisabled, a quick reply item's
	// type) must not be written into what is recorded.
	msg := `{"type":"text","text":"hi","quickReply":{"items":[{"action":{"type":"message","label":"a","text":"a"}}]}}`
	res, out := call(t, srv, http.MethodPost, "/v2/bot/message/push", "Bearer "+token, pushBody(msg))
	require.Equal(t, http.StatusOK, res.StatusCode, "body: %s", out)
	require.Len(t, s.Pushes(), 1)
	assert.JSONEq(t, msg, string(s.Pushes()[0].Messages[0]))
}

func TestBodiesThatAreNotJSON(t *testing.T) {
	_, srv := newFake(t)
	auth := "Bearer " + token

	res, out := call(t, srv, http.MethodPost, "/v2/bot/message/push", auth, "{\n\"to\": ,}")
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	assert.Equal(t, "The request body could not be parsed as JSON (line: 2, column: 8)", decodeError(t, out).Message)

	res, out = call(t, srv, http.MethodPost, "/v2/bot/message/push", auth, pushBody(`{"type":"text","text":"hi"}`), "Content-Type", "text/plain")
	require.Equal(t, http.StatusUnsupportedMediaType, res.StatusCode)
	assert.Equal(t, "A content type not supported by the API is requested", decodeError(t, out).Message)

	res, out = call(t, srv, http.MethodPost, "/v2/bot/message/push", auth, "")
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	assert.Equal(t, "The request body is required", decodeError(t, out).Message)

	res, out = call(t, srv, http.MethodPost, "/v2/bot/message/push", auth, "[]")
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	assert.Equal(t, []errorDetail{{Message: "must be an object"}}, decodeError(t, out).Details)

	res, _ = call(t, srv, http.MethodPost, "/v2/bot/message/push", auth, `{"to":"`+strings.Repeat("x", maxBodyBytes)+`"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
}

func TestUnknownPathsAreNotFound(t *testing.T) {
	_, srv := newFake(t)
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v2/bot/nothing"},
		{http.MethodGet, "/v2/bot/message/push"},
		{http.MethodGet, "/v2/bot/followers/ids"}, // in LINE's document, not in the fake
	} {
		res, out := call(t, srv, tc.method, tc.path, "Bearer "+token, "")
		assert.Equal(t, http.StatusNotFound, res.StatusCode, "%s %s", tc.method, tc.path)
		assert.Equal(t, "Not found", decodeError(t, out).Message)
	}
}

func TestEmbeddedDocumentAndLicense(t *testing.T) {
	doc, err := openapiFiles.ReadFile(specPath)
	require.NoError(t, err)
	assert.Contains(t, string(doc), "title: LINE Messaging API")
	license, err := openapiFiles.ReadFile("openapi/LICENSE")
	require.NoError(t, err)
	assert.Contains(t, string(license), "Apache License")
}

func TestEveryDiscriminatorMappingResolves(t *testing.T) {
	sp, err := loadSpec()
	require.NoError(t, err)
	message := componentSchema(sp.doc, "Message")
	require.NotNil(t, message)
	assert.Len(t, sp.mappings[message], 11)
	assert.Same(t, componentSchema(sp.doc, "TextMessage"), sp.mappings[message]["text"])
	for base, m := range sp.mappings {
		for name, target := range m {
			assert.NotNil(t, target, "%s → %s", base.Discriminator.PropertyName, name)
		}
	}
}

func TestTightenFailsWhenItsSchemasAreGone(t *testing.T) {
	err := tighten(&openapi3.T{Components: &openapi3.Components{Schemas: openapi3.Schemas{}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PushMessageRequest")
	assert.Contains(t, err.Error(), "FlexCarousel")
}
