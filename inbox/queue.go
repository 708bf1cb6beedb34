package inbox

import (
	"sync"
	"time"

	"github.com/stepcast/stepcast/models"
)

// friendKey names a friend: their events are applied one at a time, in the
// order they arrived.
type friendKey struct {
	channelID uint
	userID    string
}

func keyOf(ev *models.WebhookEvent) friendKey { return friendKey{ev.ChannelID, ev.UserID} }

// job is an event to apply, with the channel's active scenarios as read
// after the event was fetched (for a follow).
type job struct {
	ev     models.WebhookEvent
	active []models.ActiveScenario
}

// friendJobs are a friend's events waiting, behind the one a lane is
// applying when running is set.
type friendJobs struct {
	jobs    []job
	running bool
}

// queue holds the events that the fetcher handed out and that are not yet
// known to be processed in the database. A friend's events wait in one
// line that one lane at a time takes, so a friend's later event never runs
// before or beside an earlier one; a friend whose event failed is held, and
// none of their events is handed out until the fetcher starts reading the
// inbox from its beginning again after the hold.
type queue struct {
	mu       sync.Mutex
	ready    *sync.Cond // a friend became ready, or the queue closed
	capacity int

	friends map[friendKey]*friendJobs
	// waiting lists the friends with events and no lane, in the order they
	// became ready.
	waiting []friendKey
	// jobs counts the events queued or being applied.
	jobs int
	// out holds every event handed out and not yet known to be processed:
	// queued, being applied, or applied and waiting for its mark. The
	// fetcher never hands one out again.
	out map[uint]bool
	// applied are events applied and not yet marked processed; marked are
	// events marked since the last fetch began, which leave out then (a
	// fetch that began before the mark may still read them as pending).
	applied []uint
	marked  []uint
	// held are friends whose event failed, until when.
	held   map[friendKey]time.Time
	closed bool

	// room is signalled when the jobs fall to half the capacity; flush when
	// enough events wait for their mark.
	room  chan struct{}
	flush chan struct{}
}

// flushAt is how many applied events wake the marker before its tick.
const flushAt = 100

func newQueue(capacity int) *queue {
	q := &queue{capacity: capacity, friends: map[friendKey]*friendJobs{}, out: map[uint]bool{}, held: map[friendKey]time.Time{},
		room: make(chan struct{}, 1), flush: make(chan struct{}, 1)}
	q.ready = sync.NewCond(&q.mu)
	return q
}

// size is the number of events queued or being applied.
func (q *queue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.jobs
}

// beginFetch is called before each read of the inbox. Events marked
// processed leave out: the read cannot see them as pending. At the start of
// a pass (a read from the inbox's beginning), holds that have expired end.
func (q *queue) beginFetch(now time.Time, pass bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, id := range q.marked {
		delete(q.out, id)
	}
	q.marked = nil
	if pass {
		for k, until := range q.held {
			if !now.Before(until) {
				delete(q.held, k)
			}
		}
	}
}

// holdExpired reports whether a held friend may be tried again, which
// needs a new pass.
func (q *queue) holdExpired(now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, until := range q.held {
		if !now.Before(until) {
			return true
		}
	}
	return false
}

// fresh returns, of the events read, those that may be handed out (not out,
// friend not held), up to the queue's room, and how many of the events
// read it went through: the rest are read again by the next fetch.
func (q *queue) fresh(events []models.WebhookEvent) ([]models.WebhookEvent, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []models.WebhookEvent
	room := q.capacity - q.jobs
	for i := range events {
		ev := &events[i]
		if q.out[ev.ID] {
			continue
		}
		if _, held := q.held[keyOf(ev)]; held {
			continue
		}
		if len(out) == room {
			return out, i
		}
		out = append(out, *ev)
	}
	return out, len(events)
}

// add hands out jobs, in order. A job whose friend was held meanwhile is
// left for a later pass.
func (q *queue) add(jobs []job) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, j := range jobs {
		k := keyOf(&j.ev)
		if _, held := q.held[k]; held || q.closed || q.out[j.ev.ID] {
			continue
		}
		fj := q.friends[k]
		if fj == nil {
			fj = &friendJobs{}
			q.friends[k] = fj
			q.waiting = append(q.waiting, k)
			q.ready.Signal()
		}
		fj.jobs = append(fj.jobs, j)
		q.out[j.ev.ID] = true
		q.jobs++
		n++
	}
	return n
}

// take waits for a friend with events and no lane, and returns the friend's
// first event; false once the queue is closed.
func (q *queue) take() (friendKey, job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.waiting) == 0 && !q.closed {
		q.ready.Wait()
	}
	if q.closed {
		return friendKey{}, job{}, false
	}
	k := q.waiting[0]
	q.waiting = q.waiting[1:]
	fj := q.friends[k]
	fj.running = true
	j := fj.jobs[0]
	fj.jobs = fj.jobs[1:]
	return k, j, true
}

// done records the outcome of the friend's event and returns their next
// one, to be applied by the same lane. After a failure the friend's other
// events are dropped (they stay pending in the inbox) and, for a hold
// longer than zero, the friend is held until now+hold.
func (q *queue) done(k friendKey, id uint, err error, now time.Time, hold time.Duration) (job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs--
	fj := q.friends[k]
	if err == nil {
		q.applied = append(q.applied, id)
		if len(q.applied) >= flushAt {
			signal(q.flush)
		}
	} else {
		delete(q.out, id)
		if hold > 0 {
			q.held[k] = now.Add(hold)
		}
	}
	var next job
	more := err == nil && !q.closed && len(fj.jobs) > 0
	if more {
		next, fj.jobs = fj.jobs[0], fj.jobs[1:]
	} else {
		q.dropJobs(fj)
		delete(q.friends, k)
	}
	if q.jobs <= q.capacity/2 {
		signal(q.room)
	}
	return next, more
}

// dropJobs forgets a friend's queued events; they stay pending in the inbox.
func (q *queue) dropJobs(fj *friendJobs) {
	for _, j := range fj.jobs {
		delete(q.out, j.ev.ID)
	}
	q.jobs -= len(fj.jobs)
	fj.jobs = nil
}

// drop forgets every queued event that no lane has started; events being
// applied finish.
func (q *queue) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, fj := range q.friends {
		q.dropJobs(fj)
		if !fj.running {
			delete(q.friends, k)
		}
	}
	q.waiting = nil
}

// close drops the queued events and stops the lanes once their current
// event is done.
func (q *queue) close() {
	q.drop()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.ready.Broadcast()
}

// takeApplied returns the events applied since the last call, to mark.
func (q *queue) takeApplied() []uint {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := q.applied
	q.applied = nil
	return ids
}

// markDone records the outcome of marking ids: marked, they leave out at the
// next fetch; not marked, they wait for the next try and stay out of fetches.
func (q *queue) markDone(ids []uint, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil {
		q.applied = append(q.applied, ids...)
		return
	}
	q.marked = append(q.marked, ids...)
}

// signal sends on a channel of capacity one without waiting.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
