package main

// An open-loop load generator: requests go out on a fixed schedule whether
// or not earlier ones have been answered, and each latency counts from when
// its request was due to go, so a stall shows in the figures instead of
// slowing the load (no coordinated omission).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/stepcast/stepcast/fakeline"
)

// request is one prepared request: made before the run, so that building
// and signing bodies is not part of what is measured.
type request struct {
	method, url string
	body        []byte
	header      http.Header
}

type loadResult struct {
	Planned   int
	OK        int
	Errors    int
	ErrorKind map[string]int
	Rate      float64       // the planned rate
	Start     time.Time     // when the first request was due
	Span      time.Duration // from the first due time to the last answer
	SendSpan  time.Duration // from the first to the last due time
	Lat       []time.Duration
	MaxLag    time.Duration // how late the generator sent its latest request
}

func (r *loadResult) accepted() float64 {
	if r.Span <= 0 {
		return 0
	}
	return float64(r.OK) / r.Span.Seconds()
}

func (r *loadResult) pct(p float64) time.Duration { return percentile(r.Lat, p) }

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func newLoadClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 90 * time.Second,
	}}
}

// runLoad sends reqs at rate per second, open loop. onSent, if set, is
// called with the index of each request after it was answered 200.
func runLoad(ctx context.Context, hc *http.Client, rate float64, reqs []request, onOK func(i int, at time.Time)) *loadResult {
	n := len(reqs)
	res := &loadResult{Planned: n, Rate: rate, ErrorKind: map[string]int{}}
	if n == 0 {
		return res
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(50 * time.Millisecond)
	res.Start = start
	lat := make([]time.Duration, n)
	okv := make([]bool, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		last time.Time
	)
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				n = i
			case <-time.After(d):
			}
			if ctx.Err() != nil {
				break
			}
		} else if -d > res.MaxLag {
			res.MaxLag = -d
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rq := reqs[i]
			req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, bytes.NewReader(rq.body))
			if err != nil {
				return
			}
			for k, v := range rq.header {
				req.Header[k] = v
			}
			resp, err := hc.Do(req)
			kind := ""
			if err != nil {
				kind = "transport: " + shortErr(err)
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					kind = fmt.Sprintf("HTTP %d", resp.StatusCode)
				}
			}
			now := time.Now()
			lat[i] = now.Sub(due)
			mu.Lock()
			if now.After(last) {
				last = now
			}
			if kind != "" {
				res.ErrorKind[kind]++
			} else {
				okv[i] = true
			}
			mu.Unlock()
			if kind == "" && onOK != nil {
				onOK(i, now)
			}
		}()
	}
	wg.Wait()
	res.Planned = n
	res.SendSpan = time.Duration(max(n-1, 0)) * interval
	res.Span = last.Sub(start)
	for i := range n {
		if okv[i] {
			res.OK++
			res.Lat = append(res.Lat, lat[i])
		} else {
			res.Errors++
		}
	}
	sort.Slice(res.Lat, func(a, b int) bool { return res.Lat[a] < res.Lat[b] })
	return res
}

func shortErr(err error) string {
	s := err.Error()
	for _, k := range []string{"timeout", "connection refused", "connection reset", "EOF", "too many open files"} {
		if bytes.Contains([]byte(s), []byte(k)) {
			return k
		}
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// followRequests prepares n signed follow webhooks for a channel, from new
// user IDs, and returns the user IDs too.
func followRequests(apiURL string, channel uint, n int) ([]request, []string) {
	reqs := make([]request, n)
	users := make([]string, n)
	url := fmt.Sprintf("%s/webhooks/line/%d", apiURL, channel)
	now := time.Now()
	for i := range n {
		users[i] = userID()
		body := fakeline.WebhookBody("follow", users[i], now)
		reqs[i] = request{method: http.MethodPost, url: url, body: body, header: http.Header{
			"Content-Type":     {"application/json"},
			"X-Line-Signature": {fakeline.Sign(channelSecret, body)},
		}}
	}
	return reqs, users
}

func getRequests(url string, n int) []request {
	reqs := make([]request, n)
	for i := range reqs {
		reqs[i] = request{method: http.MethodGet, url: url}
	}
	return reqs
}

// rateOf is how many events per second the times show, counted from start
// to the last of them.
func rateOf(times []time.Time, start time.Time) (float64, time.Duration) {
	if len(times) == 0 {
		return 0, 0
	}
	last := slices.MaxFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	span := last.Sub(start)
	if span <= 0 {
		return 0, span
	}
	return float64(len(times)) / span.Seconds(), span
}

// deliverAll sends reqs at rate and sends again, as LINE redelivers, those
// that were not answered 200, until all were (or five rounds passed). The
// same body carries the same webhookEventId, so nothing is applied twice.
// It returns the first round's result and how many needed a resend.
func deliverAll(ctx context.Context, rate float64, reqs []request) (*loadResult, int, error) {
	hc := newLoadClient()
	var first *loadResult
	resent := 0
	for round := 0; round < 5 && len(reqs) > 0; round++ {
		ok := make([]bool, len(reqs))
		lr := runLoad(ctx, hc, rate, reqs, func(i int, _ time.Time) { ok[i] = true })
		if first == nil {
			first = lr
		}
		var again []request
		for i, r := range reqs {
			if !ok[i] {
				again = append(again, r)
			}
		}
		if round > 0 {
			resent += len(reqs)
		}
		reqs = again
		if ctx.Err() != nil {
			return first, resent, ctx.Err()
		}
	}
	if len(reqs) > 0 {
		return first, resent, fmt.Errorf("%d webhooks were still refused after five rounds", len(reqs))
	}
	return first, resent, nil
}
