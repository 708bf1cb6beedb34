// Package fakeline is an in-memory fake of the LINE Messaging API, for tests
// and dev mode, where there is no LINE to talk to.
//
// It answers the calls Stepcast makes: push and multicast messages, user
// profiles, the monthly quota and its consumption, and bot info. Every request
// is checked the way LINE checks it: a bearer token, then LINE's own OpenAPI
// document, including the subtype of each message, action, template and flex
// component, plus a few limits LINE enforces that the document leaves out.
// The document and those checks belong to package lineschema, which Stepcast
// also uses to check messages before it stores them. A request LINE would
// refuse gets LINE's status and error body. Accepted sends are
// recorded for tests to inspect, X-Line-Retry-Key is honoured with 409 as LINE
// does, and a monthly quota, errors and delays can be injected. Another
// process (dev mode, integration tests) reaches the same controls through the
// unauthenticated /fake/ endpoints; see Handler.
//
// Limits:
//   - Only the endpoints above exist; the document's other paths answer 404.
//   - Any non-empty token is accepted and recorded, never verified. Each token
//     has its own retry keys, as each LINE channel does, but the quota, usage,
//     faults and profiles are shared by all tokens.
//   - Every well-formed user ID is a friend with a profile: nobody blocks,
//     groups and rooms have no members.
//   - LINE checks more than is written down here: flex nesting rules, image
//     sizes, whether URLs answer, lengths counted in UTF-16 units. The fake
//     can accept a message that LINE would refuse, not the other way round.
//   - Retry keys and usage live until Reset: LINE forgets retry keys after
//     24 hours and resets usage each month.
//   - There is no rate limit unless one is injected with InjectFault.
//   - The package leaves gin's global mode alone: a program that does not
//     set GIN_MODE=release (or gin.SetMode) gets gin's debug route listing.
package fakeline

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Server is an in-memory fake of the LINE Messaging API, safe for concurrent use.
type Server struct {
	spec   *spec
	engine *gin.Engine

	mu        sync.Mutex
	pushes    []Push
	faults    []Fault
	accepted  map[retryKey]acceptance
	limit     int64
	usage     int64
	profiles  map[string]string
	messageID int64
}

// Push is one accepted push or multicast request.
type Push struct {
	Kind         string            `json:"kind"` // "push" or "multicast"
	To           []string          `json:"to"`
	Messages     []json.RawMessage `json:"messages"` // as the client sent them
	RetryKey     string            `json:"retryKey,omitempty"`
	ChannelToken string            `json:"channelToken"` // bearer token used
	At           time.Time         `json:"at"`
	RequestID    string            `json:"requestId"` // the x-line-request-id answered
}

// Fault is a failure injected into push and multicast requests that are
// otherwise valid: requests LINE would refuse anyway are answered as LINE
// would and do not use up a fault.
type Fault struct {
	// Status is answered with LINE's error body; 0 answers normally after Delay.
	Status int
	// Count is how many requests the fault applies to; 0 means until cleared.
	Count int
	// Delay is waited before answering. A client that gives up ends the
	// wait, and then nothing is recorded (unless Accepted).
	Delay time.Duration
	// Message replaces the error message, which is otherwise the status text
	// ("Too Many Requests" for 429, "Internal Server Error" for 500).
	Message string
	// Accepted makes the fault strike after the request has been accepted
	// and recorded, as when LINE sends the message but the client never
	// hears so: a retry with the same X-Line-Retry-Key then gets 409.
	Accepted bool
}

type retryKey struct {
	token, key string
}

// acceptance is what a 409 for a reused retry key repeats.
type acceptance struct {
	requestID string
	sent      []sentMessage
}

type sentMessage struct {
	ID         string `json:"id"`
	QuoteToken string `json:"quoteToken,omitempty"`
}

// New returns an empty fake. It fails only if the embedded OpenAPI document
// cannot be loaded, which the package's tests rule out.
func New() (*Server, error) {
	sp, err := loadSpec()
	if err != nil {
		return nil, err
	}
	s := &Server{
		spec:     sp,
		accepted: map[retryKey]acceptance{},
		profiles: map[string]string{},
		// LINE's message IDs are 18-digit numbers.
		messageID: 500000000000000000,
	}
	s.engine = s.routes()
	return s, nil
}

// Handler serves the LINE Messaging API under /v2/bot/ and, without
// authentication, these controls for other processes:
//
//	GET    /fake/pushes[?to=U...]   JSON array of Push, see Pushes and PushesTo
//	DELETE /fake/pushes             Reset
//	POST   /fake/faults             {"status":500,"count":1,"delay":"2s","message":"...","accepted":false}
//	                                delay is a Go duration string, or a number of milliseconds
//	DELETE /fake/faults             ClearFaults
//	PUT    /fake/quota              {"limit":1000}, 0 for none
//	PUT    /fake/profiles/{userId}  {"displayName":"Taro"}
//
// Control calls answer 204 on success and 400 with {"message":...} on bad input.
func (s *Server) Handler() http.Handler {
	return s.engine
}

// Pushes returns copies of accepted push/multicast requests in arrival order.
func (s *Server) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Push, 0, len(s.pushes))
	for _, p := range s.pushes {
		out = append(out, p.clone())
	}
	return out
}

// PushesTo returns accepted pushes whose recipient is userID, in arrival
// order. A multicast counts once for each of its recipients and is returned
// whole, with all of them in To.
func (s *Server) PushesTo(userID string) []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Push{}
	for _, p := range s.pushes {
		if slices.Contains(p.To, userID) {
			out = append(out, p.clone())
		}
	}
	return out
}

// Reset forgets pushes, faults, retry keys and usage. The quota limit and
// profiles stay, as they describe the account rather than what happened.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes = nil
	s.faults = nil
	s.accepted = map[retryKey]acceptance{}
	s.usage = 0
}

// InjectFault makes the next f.Count push/multicast requests fail (Count 0 =
// until cleared) with f.Status and/or wait f.Delay before answering. Faults
// injected one after another apply in turn.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetQuota sets the monthly message limit; 0 (or less) means none. Usage
// counts messages times recipients of accepted sends, as LINE does.
func (s *Server) SetQuota(limit int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = max(limit, 0)
}

// SetProfile sets the display name the profile endpoint gives for userID.
func (s *Server) SetProfile(userID, displayName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[userID] = displayName
}

func (p Push) clone() Push {
	p.To = slices.Clone(p.To)
	msgs := make([]json.RawMessage, len(p.Messages))
	for i, m := range p.Messages {
		msgs[i] = slices.Clone(m)
	}
	p.Messages = msgs
	return p
}

// takeFault returns the fault that applies to the next send, if any, and
// counts it used.
func (s *Server) takeFault() (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return Fault{}, false
	}
	f := s.faults[0]
	if f.Count > 0 {
		s.faults[0].Count--
		if s.faults[0].Count == 0 {
			s.faults = s.faults[1:]
		}
	}
	return f, true
}
