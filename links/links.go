// Package links makes tracked links. URLs in a step's messages are
// replaced with links to Stepcast's redirect, carrying a signed token that
// names the link (a URL the scenario contains) and the friend; the redirect
// records the click and sends the person on. Only URLs that a scenario
// contains can be redirected to, and a token cannot be forged or altered
// without the secret.
package links

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/stepcast/stepcast"
)

// Signer signs and reads link tokens.
type Signer struct {
	Secret []byte
}

// tokenMACBytes is how much of the HMAC a token carries: 128 bits.
const tokenMACBytes = 16

// Token returns the token for a link and a friend.
func (s *Signer) Token(linkID, friendID uint) string {
	payload := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(linkID)), uint64(friendID))
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(s.mac(payload))
}

// Parse checks a token and returns the link and friend it names. Any
// tampering is EINVALID.
func (s *Signer) Parse(token string) (linkID, friendID uint, err error) {
	bad := stepcast.Errorf(stepcast.EINVALID, "link token is not valid")
	p, m, ok := strings.Cut(token, ".")
	if !ok || len(token) > 128 {
		return 0, 0, bad
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	mac, err2 := enc.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac(payload)) {
		return 0, 0, bad
	}
	l, n := binary.Uvarint(payload)
	f, k := binary.Uvarint(payload[max(n, 0):])
	if n <= 0 || k <= 0 || n+k != len(payload) || l == 0 || f == 0 {
		return 0, 0, bad
	}
	// One spelling per token: base64 decoding forgives unused bits and
	// line breaks, so a token is only accepted exactly as Token writes it.
	if token != s.Token(uint(l), uint(f)) {
		return 0, 0, bad
	}
	return uint(l), uint(f), nil
}

func (s *Signer) mac(payload []byte) []byte {
	h := hmac.New(sha256.New, s.Secret)
	h.Write([]byte("stepcast-link\x00"))
	h.Write(payload)
	return h.Sum(nil)[:tokenMACBytes]
}

// LinkIDs gives the ID of a step's link to a URL.
type LinkIDs func(ctx context.Context, url string) (uint, error)

// Rewriter replaces URLs in messages with tracked links.
type Rewriter struct {
	Signer *Signer
	// BaseURL is the public URL of the API server; links go to
	// BaseURL/r/{token}.
	BaseURL string
}

// urlFields are the JSON keys whose values are links a person follows
// (uri actions, imagemap actions, the desktop alternative); image and
// video URLs are not rewritten.
var urlFields = map[string]bool{"uri": true, "linkUri": true, "desktop": true}

var urlInText = regexp.MustCompile(`(?i)https?://[^\s"<>]+`)

// Rewrite returns msgs with every http(s) link replaced by a tracked link
// for the friend.
func (r *Rewriter) Rewrite(ctx context.Context, msgs []json.RawMessage, friendID uint, ids LinkIDs) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		dec := json.NewDecoder(bytes.NewReader(m))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		changed := false
		v, err := r.walk(ctx, v, "", friendID, ids, &changed)
		if err != nil {
			return nil, err
		}
		if !changed {
			out[i] = m // sent as written
			continue
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		out[i] = json.RawMessage(bytes.TrimSpace(buf.Bytes()))
	}
	return out, nil
}

func (r *Rewriter) walk(ctx context.Context, v any, key string, friendID uint, ids LinkIDs, changed *bool) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		isText := t["type"] == "text"
		for k, e := range t {
			var err error
			if s, ok := e.(string); ok && isText && k == "text" {
				var out string
				out, err = r.rewriteText(ctx, s, friendID, ids)
				*changed = *changed || out != s
				t[k] = out
			} else {
				t[k], err = r.walk(ctx, e, k, friendID, ids, changed)
			}
			if err != nil {
				return nil, err
			}
		}
		return t, nil
	case []any:
		for i, e := range t {
			var err error
			if t[i], err = r.walk(ctx, e, key, friendID, ids, changed); err != nil {
				return nil, err
			}
		}
		return t, nil
	case string:
		if urlFields[key] && isWebURL(t) {
			l, err := r.link(ctx, t, friendID, ids)
			*changed = *changed || l != t
			return l, err
		}
	}
	return v, nil
}

func (r *Rewriter) rewriteText(ctx context.Context, s string, friendID uint, ids LinkIDs) (string, error) {
	var err error
	out := urlInText.ReplaceAllStringFunc(s, func(u string) string {
		if err != nil {
			return u
		}
		var l string
		l, err = r.link(ctx, u, friendID, ids)
		return l
	})
	return out, err
}

func (r *Rewriter) link(ctx context.Context, url string, friendID uint, ids LinkIDs) (string, error) {
	if strings.HasPrefix(url, r.BaseURL+"/r/") {
		return url, nil
	}
	id, err := ids(ctx, url)
	if err != nil {
		return "", err
	}
	if id == 0 {
		return "", errors.New("links: no link ID")
	}
	return r.BaseURL + "/r/" + r.Signer.Token(id, friendID), nil
}

// isWebURL reports an http(s) URL; schemes are case-insensitive.
func isWebURL(s string) bool {
	l := strings.ToLower(s[:min(len(s), 8)])
	return strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")
}

// OSFromUserAgent names the operating system of a browser's user agent:
// iOS, Android, Windows, macOS, Linux, or "" when it cannot tell.
func OSFromUserAgent(ua string) string {
	switch {
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPad"), strings.Contains(ua, "iPod"):
		return "iOS"
	case strings.Contains(ua, "Android"):
		return "Android"
	case strings.Contains(ua, "Windows"):
		return "Windows"
	case strings.Contains(ua, "Mac OS X"), strings.Contains(ua, "Macintosh"):
		return "macOS"
	case strings.Contains(ua, "Linux"):
		return "Linux"
	}
	return ""
}
