package lineschema

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func raws(msgs ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		out[i] = json.RawMessage(m)
	}
	return out
}

const (
	textMsg       = `{"type":"text","text":"hi"}`
	messageAction = `{"type":"message","label":"l","text":"t"}`
)

func flex(contents string) string {
	return `{"type":"flex","altText":"x","contents":` + contents + `}`
}

func template(tmpl string) string {
	return `{"type":"template","altText":"x","template":` + tmpl + `}`
}

func TestValidMessagesPass(t *testing.T) {
	cases := map[string]string{
		"text":                   textMsg,
		"text with placeholder":  `{"type":"text","text":"Hello {{displayName}}, welcome!"}`,
		"text of 5000":           `{"type":"text","text":"` + strings.Repeat("あ", 5000) + `"}`,
		"text with null as none": `{"type":"text","text":"hi","quickReply":null,"emojis":null}`,
		"text v2 mention":        `{"type":"textV2","text":"Hi {who}","substitution":{"who":{"type":"mention","mentionee":{"type":"user","userId":"U0123456789abcdef0123456789abcdef"}}}}`,
		"sticker":                `{"type":"sticker","packageId":"446","stickerId":"1988"}`,
		"image":                  `{"type":"image","originalContentUrl":"https://example.com/a.png","previewImageUrl":"https://example.com/a-small.png"}`,
		"video":                  `{"type":"video","originalContentUrl":"https://example.com/a.mp4","previewImageUrl":"https://example.com/a.png"}`,
		"audio":                  `{"type":"audio","originalContentUrl":"https://example.com/a.m4a","duration":60000}`,
		"location":               `{"type":"location","title":"Shop","address":"Tokyo","latitude":35.68,"longitude":139.76}`,
		"flex bubble": flex(`{"type":"bubble",
			"hero":{"type":"image","url":"https://example.com/hero.png","size":"full"},
			"body":{"type":"box","layout":"vertical","contents":[
				{"type":"text","text":"Hi {{displayName}}","weight":"bold"},
				{"type":"separator"},
				{"type":"box","layout":"horizontal","contents":[{"type":"icon","url":"https://example.com/i.png"},{"type":"text","text":"x"}]}]},
			"footer":{"type":"box","layout":"vertical","contents":[
				{"type":"button","style":"primary","action":{"type":"uri","label":"Open","uri":"https://example.com"}}]}}`),
		"flex carousel": flex(`{"type":"carousel","contents":[
			{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[{"type":"text","text":"1"}]}},
			{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[{"type":"text","text":"2"}]}}]}`),
		"buttons template": template(`{"type":"buttons","text":"Pick one","actions":[` + messageAction + `,
			{"type":"uri","label":"Call","uri":"tel:0312345678"},
			{"type":"postback","label":"p","data":"a=1"},
			{"type":"datetimepicker","label":"d","data":"d","mode":"date"}]}`),
		"confirm template": template(`{"type":"confirm","text":"ok?","actions":[` + messageAction + `,` + messageAction + `]}`),
		"carousel template": template(`{"type":"carousel","columns":[
			{"text":"a","actions":[` + messageAction + `]},{"text":"b","actions":[` + messageAction + `]}]}`),
		"quick reply": `{"type":"text","text":"Choose","quickReply":{"items":[
			{"type":"action","action":` + messageAction + `},
			{"type":"action","action":{"type":"uri","label":"Site","uri":"https://example.com"}},
			{"type":"action","action":{"type":"postback","label":"p","data":"x","displayText":"P"}},
			{"type":"action","action":{"type":"camera","label":"Camera"}},
			{"type":"action","action":{"type":"location","label":"Where"}}]}}`,
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			assert.Empty(t, ValidateMessage(json.RawMessage(m)))
			assert.Empty(t, ValidateMessages(raws(textMsg, m)))
		})
	}
	t.Run("five at once", func(t *testing.T) {
		assert.Empty(t, ValidateMessages(raws(cases["text"], cases["sticker"], cases["image"], cases["flex bubble"], cases["quick reply"])))
	})
}

func TestPlaceholderIsPlainText(t *testing.T) {
	msgs := raws(`{"type":"text","text":"{{displayName}}"}`)
	assert.Nil(t, ValidateMessages(msgs))
	assert.Nil(t, ValidateMessage(msgs[0]))
	// The placeholder does not make the message exempt from its rules.
	assert.Equal(t, []Problem{{Path: "[0].quickReply.items", Message: "Size must be between 1 and 13"}},
		ValidateMessages(raws(`{"type":"text","text":"{{displayName}}","quickReply":{"items":[]}}`)))
}

func TestMessagesLINEWouldRefuse(t *testing.T) {
	cases := []struct {
		name string
		msgs []json.RawMessage
		want []Problem // all of them, in order
	}{
		{
			name: "text without text",
			msgs: raws(textMsg, `{"type":"text"}`),
			want: []Problem{{"[1].text", "must be specified"}},
		},
		{
			name: "empty text",
			msgs: raws(`{"type":"text","text":""}`),
			want: []Problem{{"[0].text", "Length must be between 1 and 5000"}},
		},
		{
			name: "text too long",
			msgs: raws(`{"type":"text","text":"` + strings.Repeat("a", 5001) + `"}`),
			want: []Problem{{"[0].text", "Length must be between 1 and 5000"}},
		},
		{
			name: "six messages",
			msgs: raws(textMsg, textMsg, textMsg, textMsg, textMsg, textMsg),
			want: []Problem{{"", "Size must be between 1 and 5"}},
		},
		{
			name: "six messages, one of them bad",
			msgs: raws(textMsg, textMsg, textMsg, `{"type":"text"}`, textMsg, textMsg),
			want: []Problem{{"", "Size must be between 1 and 5"}, {"[3].text", "must be specified"}},
		},
		{
			name: "no messages",
			msgs: nil,
			want: []Problem{{"", "Size must be between 1 and 5"}},
		},
		{
			name: "unknown type",
			msgs: raws(`{"type":"txt","text":"hi"}`),
			want: []Problem{{"[0].type", "must be one of the following values: [audio, coupon, flex, image, imagemap, location, sticker, template, text, textV2, video]"}},
		},
		{
			name: "no type",
			msgs: raws(`{"text":"hi"}`),
			want: []Problem{{"[0].type", "must be specified"}},
		},
		{
			name: "not an object",
			msgs: raws(`"hi"`),
			want: []Problem{{"[0]", "must be an object"}},
		},
		{
			name: "not JSON",
			msgs: raws(textMsg, `{"type":`),
			want: []Problem{{"[1]", "must be valid JSON: unexpected end of JSON input"}},
		},
		{
			name: "sticker without ids",
			msgs: raws(`{"type":"sticker"}`),
			want: []Problem{{"[0].packageId", "must be specified"}, {"[0].stickerId", "must be specified"}},
		},
		{
			name: "image over http",
			msgs: raws(`{"type":"image","originalContentUrl":"http://example.com/a.png","previewImageUrl":"https://example.com/b.png"}`),
			want: []Problem{{"[0].originalContentUrl", "must be an https URL"}},
		},
		{
			name: "buttons template with five actions",
			msgs: raws(template(`{"type":"buttons","text":"t","actions":[` + strings.Repeat(messageAction+",", 4) + messageAction + `]}`)),
			want: []Problem{{"[0].template.actions", "Size must be between 1 and 4"}},
		},
		{
			name: "uri action without its uri",
			msgs: raws(textMsg, template(`{"type":"buttons","text":"t","actions":[`+messageAction+`,`+messageAction+`,{"type":"uri","label":"Go"}]}`)),
			want: []Problem{{"[1].template.actions[2].uri", "must be specified"}},
		},
		{
			name: "template without alt text",
			msgs: raws(`{"type":"template","template":{"type":"confirm","text":"ok?","actions":[` + messageAction + `,` + messageAction + `]}}`),
			want: []Problem{{"[0].altText", "must be specified"}},
		},
		{
			name: "flex bubble with bad components",
			msgs: raws(flex(`{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[
				{"type":"box","layout":"horizontal","contents":[{"type":"icon"}]},
				{"type":"button","action":{"type":"uri","label":"Go","uri":"https://example.com"}},
				{"type":"widget"}]}}`)),
			want: []Problem{
				{"[0].contents.body.contents[0].contents[0].url", "must be specified"},
				{"[0].contents.body.contents[2].type", "must be one of the following values: [box, button, filler, icon, image, separator, span, text, video]"},
			},
		},
		{
			name: "flex bubble body that is not a box",
			msgs: raws(flex(`{"type":"bubble","body":{"type":"text","text":"hi"}}`)),
			want: []Problem{
				{"[0].contents.body.contents", "must be specified"},
				{"[0].contents.body.layout", "must be specified"},
				{"[0].contents.body.type", `must be "box"`},
			},
		},
		{
			name: "flex image over http",
			msgs: raws(flex(`{"type":"bubble","hero":{"type":"image","url":"http://example.com/a.png"}}`)),
			want: []Problem{{"[0].contents.hero.url", "must be an https URL"}},
		},
		{
			name: "quick reply action with a bad uri",
			msgs: raws(`{"type":"text","text":"hi","quickReply":{"items":[{"type":"action","action":{"type":"uri","label":"Go","uri":"example"}}]}}`),
			want: []Problem{{"[0].quickReply.items[0].action.uri", "must be a valid uri"}},
		},
		{
			name: "quick reply action of unknown type",
			msgs: raws(`{"type":"text","text":"hi","quickReply":{"items":[{"type":"action","action":{"type":"teleport"}}]}}`),
			want: []Problem{{"[0].quickReply.items[0].action.type", "must be one of the following values: [camera, cameraRoll, clipboard, datetimepicker, location, message, postback, richmenuswitch, uri]"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, ValidateMessages(tc.msgs))
		})
	}
}

func TestValidateMessagePathsAreRelativeToTheMessage(t *testing.T) {
	assert.Equal(t, []Problem{{"text", "must be specified"}}, ValidateMessage(json.RawMessage(`{"type":"text"}`)))
	assert.Equal(t, []Problem{{"quickReply.items[0].action.uri", "must be specified"}},
		ValidateMessage(json.RawMessage(`{"type":"text","text":"hi","quickReply":{"items":[{"type":"action","action":{"type":"uri","label":"Go"}}]}}`)))
	assert.Equal(t, []Problem{{"", "must be an object"}}, ValidateMessage(json.RawMessage(`[]`)))
	assert.Equal(t, []Problem{{"", "must be valid JSON: unexpected end of JSON input"}}, ValidateMessage(nil))
}

func TestProblemString(t *testing.T) {
	assert.Equal(t, "[0].text: must be specified", Problem{"[0].text", "must be specified"}.String())
	assert.Equal(t, "Size must be between 1 and 5", Problem{"", "Size must be between 1 and 5"}.String())
	b, err := json.Marshal(Problem{"[0].text", "must be specified"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"path":"[0].text","message":"must be specified"}`, string(b))
}

func TestValidationIsSafeConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			assert.Equal(t, []Problem{{"[0].text", "must be specified"}}, ValidateMessages(raws(`{"type":"text"}`)))
		})
	}
	wg.Wait()
}

func TestDocIsLoadedOnceAndTightened(t *testing.T) {
	doc, err := Doc()
	require.NoError(t, err)
	again, err := Doc()
	require.NoError(t, err)
	assert.Same(t, doc, again)
	assert.Equal(t, "LINE Messaging API", doc.Info.Title)

	text := componentSchema(doc, "TextMessage")
	require.NotNil(t, text)
	var textProp *openapi3.Schema
	for _, part := range text.AllOf {
		if p := part.Value.Properties["text"]; p != nil {
			textProp = p.Value
		}
	}
	require.NotNil(t, textProp)
	require.NotNil(t, textProp.MaxLength)
	assert.Equal(t, uint64(5000), *textProp.MaxLength)

	// Routing on any host does not rewrite the shared document's servers.
	require.Len(t, doc.Servers, 1)
	assert.Equal(t, "https://api.line.me", doc.Servers[0].URL)
}

func TestSubtypes(t *testing.T) {
	doc, err := Doc()
	require.NoError(t, err)
	message := componentSchema(doc, "Message")
	m := Subtypes(message)
	assert.Len(t, m, 11)
	assert.Same(t, componentSchema(doc, "TextMessage"), m["text"])
	for name, target := range m {
		assert.NotNil(t, target, name)
	}

	delete(m, "text")
	assert.Len(t, Subtypes(message), 11, "the map is a copy")
	assert.Nil(t, Subtypes(componentSchema(doc, "TextMessage")), "no discriminator")
	assert.NotEmpty(t, Subtypes(componentSchema(doc, "Action")))
	assert.NotEmpty(t, Subtypes(componentSchema(doc, "FlexComponent")))
}

func TestTightenFailsWhenItsSchemasAreGone(t *testing.T) {
	err := Tighten(&openapi3.T{Components: &openapi3.Components{Schemas: openapi3.Schemas{}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PushMessageRequest")
	assert.Contains(t, err.Error(), "FlexCarousel")
}

func TestPatternMessage(t *testing.T) {
	assert.Equal(t, "must be a user ID (U followed by 32 lowercase hex digits)", PatternMessage(UserIDPattern))
	assert.Contains(t, PatternMessage(ChatIDPattern), "group or room")
	assert.Equal(t, `must match "^x$"`, PatternMessage("^x$"))
}

func TestEmbeddedDocumentAndLicense(t *testing.T) {
	doc, err := Files().ReadFile("openapi/messaging-api.yml")
	require.NoError(t, err)
	assert.Contains(t, string(doc), "title: LINE Messaging API")
	license, err := Files().ReadFile("openapi/LICENSE")
	require.NoError(t, err)
	assert.Contains(t, string(license), "Apache License")
}

func TestFindRouteOnAnyHost(t *testing.T) {
	r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:8080/v2/bot/message/push", nil)
	require.NoError(t, err)
	route, _, err := FindRoute(r)
	require.NoError(t, err)
	assert.Equal(t, "/v2/bot/message/push", route.Path)

	r, err = http.NewRequest(http.MethodGet, "http://fake.test/v2/bot/profile/U0123456789abcdef0123456789abcdef", nil)
	require.NoError(t, err)
	_, params, err := FindRoute(r)
	require.NoError(t, err)
	assert.Equal(t, "U0123456789abcdef0123456789abcdef", params["userId"])

	r, err = http.NewRequest(http.MethodGet, "http://fake.test/v2/bot/nothing", nil)
	require.NoError(t, err)
	_, _, err = FindRoute(r)
	assert.ErrorIs(t, err, routers.ErrPathNotFound)
}

func TestValidateRequest(t *testing.T) {
	const friend = "U0123456789abcdef0123456789abcdef"
	validate := func(body string, header ...string) ([]string, []Problem) {
		t.Helper()
		r, err := http.NewRequest(http.MethodPost, "http://fake.test/v2/bot/message/push", nil)
		require.NoError(t, err)
		r.Header.Set("Authorization", "Bearer x")
		r.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		route, params, err := FindRoute(r)
		require.NoError(t, err)
		return ValidateRequest(r, route, params, []byte(body))
	}

	msgs, problems := validate(`{"to":"` + friend + `","messages":[` + textMsg + `],"customAggregationUnits":null}`)
	assert.Nil(t, msgs)
	assert.Nil(t, problems)

	msgs, problems = validate(`{"to":"C1","messages":[` + textMsg + `,{"type":"text"}]}`)
	assert.Nil(t, msgs)
	assert.Equal(t, []Problem{{"messages[1].text", "must be specified"}, {"to", PatternMessage(ChatIDPattern)}}, problems)

	msgs, problems = validate(`{"to":"`+friend+`","messages":[`+textMsg+`]}`, "X-Line-Retry-Key", "not-a-uuid")
	assert.Equal(t, []string{"The value for the 'X-Line-Retry-Key' header is invalid"}, msgs)
	assert.Nil(t, problems)

	msgs, problems = validate("{\n\"to\": ,}")
	assert.Equal(t, []string{"The request body could not be parsed as JSON (line: 2, column: 8)"}, msgs)
	assert.Nil(t, problems)

	msgs, problems = validate("")
	assert.Equal(t, []string{"The request body is required"}, msgs)
	assert.Nil(t, problems)
}
