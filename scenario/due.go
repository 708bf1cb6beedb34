package scenario

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DueAt returns when a wait that starts from base is over, in loc.
//
// Calendar waits count days on the calendar of the scenario's time zone:
// "days: 3, at: 10:00" from a base on 31 January at 15:00 is 3 February at
// 10:00, whatever the length of the days in between. Day 0 is the base's own
// day. A due time that is not after the base (only possible on day 0, say
// "days: 0, at: 10:00" for a friend who adds the account at 14:00) moves to the
// same clock time on the next day, so a step is never sent before the friend
// was enrolled and never twice on one day by accident.
//
// A wait with only At is "days: 0". A wait with only Days keeps the base's
// clock time.
func (w *Wait) DueAt(base time.Time, loc *time.Location) (time.Time, error) {
	if w.After != "" {
		d, err := time.ParseDuration(w.After)
		if err != nil {
			return time.Time{}, fmt.Errorf("after: %w", err)
		}
		return base.Add(d), nil
	}
	days := 0
	if w.Days != nil {
		days = *w.Days
	}
	b := base.In(loc)
	hour, minute, sec := b.Hour(), b.Minute(), b.Second()
	if w.At != "" {
		h, m, err := ParseClock(w.At)
		if err != nil {
			return time.Time{}, fmt.Errorf("at: %w", err)
		}
		hour, minute, sec = h, m, 0
	}
	due := time.Date(b.Year(), b.Month(), b.Day()+days, hour, minute, sec, 0, loc)
	if !due.After(base) && w.At != "" {
		due = time.Date(b.Year(), b.Month(), b.Day()+days+1, hour, minute, sec, 0, loc)
	}
	return due, nil
}

// ParseClock parses "HH:MM" on a 24-hour clock.
func ParseClock(s string) (hour, minute int, err error) {
	hs, ms, ok := strings.Cut(s, ":")
	if !ok || len(hs) != 2 || len(ms) != 2 || !digits(hs+ms) {
		return 0, 0, fmt.Errorf("%q is not a time of day in HH:MM form", s)
	}
	hour, err1 := strconv.Atoi(hs)
	minute, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return 0, 0, fmt.Errorf("%q is not a time of day in HH:MM form", s)
	}
	return hour, minute, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
