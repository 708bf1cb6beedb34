package scenario_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stepcast/stepcast/scenario"
)

func tokyo(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	return loc
}

// jst is a wall-clock time in Asia/Tokyo.
func jst(t *testing.T, year int, month time.Month, day, hour, minute int) time.Time {
	t.Helper()
	return time.Date(year, month, day, hour, minute, 0, 0, tokyo(t))
}

func days(n int) *int { return &n }

// TestDueAtCalendarDays checks that "days N at HH:MM" counts calendar days of
// the scenario's time zone, across month and year ends and leap days.
func TestDueAtCalendarDays(t *testing.T) {
	tests := []struct {
		name string
		base time.Time
		wait scenario.Wait
		want time.Time
	}{
		{"next day", jst(t, 2026, 3, 10, 15, 0), scenario.Wait{Days: days(1), At: "10:00"}, jst(t, 2026, 3, 11, 10, 0)},
		{"Jan 31 + 3 is Feb 3", jst(t, 2026, 1, 31, 15, 0), scenario.Wait{Days: days(3), At: "10:00"}, jst(t, 2026, 2, 3, 10, 0)},
		{"Jan 30 + 3 is Feb 2", jst(t, 2026, 1, 30, 15, 0), scenario.Wait{Days: days(3), At: "10:00"}, jst(t, 2026, 2, 2, 10, 0)},
		{"Feb 28 + 1 in a non-leap year is Mar 1", jst(t, 2026, 2, 28, 12, 0), scenario.Wait{Days: days(1), At: "09:30"}, jst(t, 2026, 3, 1, 9, 30)},
		{"Feb 28 + 1 in a leap year is Feb 29", jst(t, 2028, 2, 28, 12, 0), scenario.Wait{Days: days(1), At: "09:30"}, jst(t, 2028, 2, 29, 9, 30)},
		{"Feb 28 + 2 in a leap year is Mar 1", jst(t, 2028, 2, 28, 12, 0), scenario.Wait{Days: days(2), At: "09:30"}, jst(t, 2028, 3, 1, 9, 30)},
		{"Dec 31 + 1 is Jan 1 of the next year", jst(t, 2026, 12, 31, 20, 0), scenario.Wait{Days: days(1), At: "10:00"}, jst(t, 2027, 1, 1, 10, 0)},
		{"Dec 30 + 5 is Jan 4", jst(t, 2026, 12, 30, 8, 0), scenario.Wait{Days: days(5), At: "18:45"}, jst(t, 2027, 1, 4, 18, 45)},
		{"30 days crosses a month of 28 days", jst(t, 2026, 2, 1, 10, 0), scenario.Wait{Days: days(30), At: "10:00"}, jst(t, 2026, 3, 3, 10, 0)},
		{"late clock on day 1 from an early base", jst(t, 2026, 5, 1, 0, 5), scenario.Wait{Days: days(1), At: "23:59"}, jst(t, 2026, 5, 2, 23, 59)},
		{"at midnight", jst(t, 2026, 5, 1, 12, 0), scenario.Wait{Days: days(1), At: "00:00"}, jst(t, 2026, 5, 2, 0, 0)},
		{"only days keeps the base's clock", jst(t, 2026, 1, 31, 14, 37), scenario.Wait{Days: days(2)}, jst(t, 2026, 2, 2, 14, 37)},
		{"from is ignored by DueAt itself (the caller picks the base)", jst(t, 2026, 1, 31, 15, 0), scenario.Wait{Days: days(1), At: "10:00", From: scenario.FromPrevious}, jst(t, 2026, 2, 1, 10, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.wait.DueAt(tt.base, tokyo(t))
			require.NoError(t, err)
			require.True(t, got.Equal(tt.want), "due %s, want %s", got, tt.want)
			require.Equal(t, "Asia/Tokyo", got.Location().String(), "due times are in the scenario's zone")
		})
	}
}

// TestDueAtDayZero checks the written rule: a day-0 time that is not after
// the base moves to the same clock time on the next day.
func TestDueAtDayZero(t *testing.T) {
	tests := []struct {
		name string
		base time.Time
		wait scenario.Wait
		want time.Time
	}{
		{"after the clock time moves to tomorrow", jst(t, 2026, 4, 1, 14, 0), scenario.Wait{Days: days(0), At: "10:00"}, jst(t, 2026, 4, 2, 10, 0)},
		{"before the clock time stays today", jst(t, 2026, 4, 1, 9, 0), scenario.Wait{Days: days(0), At: "10:00"}, jst(t, 2026, 4, 1, 10, 0)},
		{"exactly at the clock time moves to tomorrow", jst(t, 2026, 4, 1, 10, 0), scenario.Wait{Days: days(0), At: "10:00"}, jst(t, 2026, 4, 2, 10, 0)},
		{"one second past the clock time moves", jst(t, 2026, 4, 1, 10, 0).Add(time.Second), scenario.Wait{Days: days(0), At: "10:00"}, jst(t, 2026, 4, 2, 10, 0)},
		{"one second before the clock time stays", jst(t, 2026, 4, 1, 10, 0).Add(-time.Second), scenario.Wait{Days: days(0), At: "10:00"}, jst(t, 2026, 4, 1, 10, 0)},
		{"only at is day 0", jst(t, 2026, 4, 1, 14, 0), scenario.Wait{At: "10:00"}, jst(t, 2026, 4, 2, 10, 0)},
		{"only at, before the clock time", jst(t, 2026, 4, 1, 7, 0), scenario.Wait{At: "10:00"}, jst(t, 2026, 4, 1, 10, 0)},
		{"day 0 past the clock on the last day of the month", jst(t, 2026, 1, 31, 22, 0), scenario.Wait{Days: days(0), At: "10:00"}, jst(t, 2026, 2, 1, 10, 0)},
		{"day 0 past the clock on Dec 31", jst(t, 2026, 12, 31, 22, 0), scenario.Wait{Days: days(0), At: "10:00"}, jst(t, 2027, 1, 1, 10, 0)},
		{"day 1 is not moved even when the clock time is earlier", jst(t, 2026, 4, 1, 14, 0), scenario.Wait{Days: days(1), At: "10:00"}, jst(t, 2026, 4, 2, 10, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.wait.DueAt(tt.base, tokyo(t))
			require.NoError(t, err)
			require.True(t, got.Equal(tt.want), "due %s, want %s", got, tt.want)
			require.True(t, got.After(tt.base), "a due time is never at or before the base")
		})
	}
}

// TestDueAtDaysZeroWithoutClock: "days: 0" alone is due at once (at the
// base), it is not moved to the next day.
func TestDueAtDaysZeroWithoutClock(t *testing.T) {
	base := jst(t, 2026, 4, 1, 14, 0)
	got, err := (&scenario.Wait{Days: days(0)}).DueAt(base, tokyo(t))
	require.NoError(t, err)
	require.True(t, got.Equal(base), "due %s, want %s", got, base)
}

// TestDueAtBaseInUTC checks that a base given in UTC is placed on the JST
// calendar before days are counted.
func TestDueAtBaseInUTC(t *testing.T) {
	tests := []struct {
		name string
		base time.Time
		wait scenario.Wait
		want time.Time
	}{
		// 2026-01-31T16:00Z is 2026-02-01 01:00 JST: day 0 is Feb 1.
		{"UTC Jan 31 16:00 is Feb 1 in JST", time.Date(2026, 1, 31, 16, 0, 0, 0, time.UTC), scenario.Wait{Days: days(1), At: "10:00"}, jst(t, 2026, 2, 2, 10, 0)},
		{"day 0 on the JST day, before the clock", time.Date(2026, 1, 31, 16, 0, 0, 0, time.UTC), scenario.Wait{Days: days(0), At: "10:00"}, jst(t, 2026, 2, 1, 10, 0)},
		// 2026-01-31T14:59Z is 23:59 JST on Jan 31.
		{"UTC 14:59 is still the same JST day", time.Date(2026, 1, 31, 14, 59, 0, 0, time.UTC), scenario.Wait{Days: days(1), At: "10:00"}, jst(t, 2026, 2, 1, 10, 0)},
		{"UTC Dec 31 15:00 is Jan 1 in JST", time.Date(2026, 12, 31, 15, 0, 0, 0, time.UTC), scenario.Wait{Days: days(1), At: "10:00"}, jst(t, 2027, 1, 2, 10, 0)},
		{"only days keeps the JST clock of a UTC base", time.Date(2026, 1, 31, 16, 0, 0, 0, time.UTC), scenario.Wait{Days: days(1)}, jst(t, 2026, 2, 2, 1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.wait.DueAt(tt.base, tokyo(t))
			require.NoError(t, err)
			require.True(t, got.Equal(tt.want), "due %s, want %s", got, tt.want)
		})
	}
}

// TestDueAtOtherZone: the calendar is the scenario's zone, not Tokyo's.
func TestDueAtOtherZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	// 2026-03-07 20:00 EST; DST starts on 2026-03-08. Days are calendar days,
	// so the 23-hour day does not shift the clock time.
	base := time.Date(2026, 3, 7, 20, 0, 0, 0, ny)
	got, err := (&scenario.Wait{Days: days(2), At: "10:00"}).DueAt(base, ny)
	require.NoError(t, err)
	want := time.Date(2026, 3, 9, 10, 0, 0, 0, ny)
	require.True(t, got.Equal(want), "due %s, want %s", got, want)
	require.Equal(t, 10, got.In(ny).Hour())
}

// TestDueAtAfter checks plain durations: they are added to the base as they
// are, with no calendar rounding and no day-0 rule.
func TestDueAtAfter(t *testing.T) {
	base := jst(t, 2026, 1, 31, 23, 30)
	tests := []struct {
		after string
		want  time.Time
	}{
		{"90s", base.Add(90 * time.Second)},
		{"30m", jst(t, 2026, 2, 1, 0, 0)},
		{"2h", jst(t, 2026, 2, 1, 1, 30)},
		{"36h", jst(t, 2026, 2, 2, 11, 30)},
		{"0s", base},
	}
	for _, tt := range tests {
		t.Run(tt.after, func(t *testing.T) {
			got, err := (&scenario.Wait{After: tt.after}).DueAt(base, tokyo(t))
			require.NoError(t, err)
			require.True(t, got.Equal(tt.want), "due %s, want %s", got, tt.want)
		})
	}

	t.Run("from previous uses whatever base is given", func(t *testing.T) {
		prev := time.Date(2026, 2, 2, 1, 0, 0, 0, time.UTC)
		got, err := (&scenario.Wait{After: "2h", From: scenario.FromPrevious}).DueAt(prev, tokyo(t))
		require.NoError(t, err)
		require.True(t, got.Equal(prev.Add(2*time.Hour)))
	})
}

func TestDueAtErrors(t *testing.T) {
	base := jst(t, 2026, 1, 1, 0, 0)
	for _, w := range []scenario.Wait{
		{After: "two hours"},
		{At: "25:00"},
		{Days: days(1), At: "10"},
	} {
		_, err := w.DueAt(base, tokyo(t))
		require.Error(t, err, "%+v", w)
	}
}

func TestParseClock(t *testing.T) {
	good := []struct {
		in           string
		hour, minute int
	}{
		{"00:00", 0, 0},
		{"09:05", 9, 5},
		{"10:00", 10, 0},
		{"12:30", 12, 30},
		{"23:59", 23, 59},
	}
	for _, tt := range good {
		t.Run(tt.in, func(t *testing.T) {
			h, m, err := scenario.ParseClock(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.hour, h)
			require.Equal(t, tt.minute, m)
		})
	}

	bad := []string{
		"", "10", "10:", ":30", "9:00", "09:5", "009:00", "10:000", "24:00", "23:60", "99:99",
		"10:00:00", "10-00", "1o:00", "ab:cd", " 9:00", "10.5:00",
	}
	for _, in := range bad {
		t.Run("bad "+in, func(t *testing.T) {
			_, _, err := scenario.ParseClock(in)
			require.Error(t, err, "ParseClock(%q) must refuse a string that is not HH:MM", in)
			require.Contains(t, err.Error(), "HH:MM")
		})
	}
}

// TestParseClockRefusesSigns: "+1:00" is not HH:MM. strconv.Atoi accepts a
// leading sign, so without a digit check ParseClock reads "+1:00" as 01:00
// and "-0:00" as 00:00, and Validate lets such a wait through.
//
// BUG (scenario/due.go, ParseClock): fails until each of the four characters
// is checked to be an ASCII digit.
func TestParseClockRefusesSigns(t *testing.T) {
	for _, in := range []string{"+1:00", "-0:00", "+9:30", "09:+5", "-1:-1"} {
		t.Run(in, func(t *testing.T) {
			_, _, err := scenario.ParseClock(in)
			require.Error(t, err, "BUG: ParseClock(%q) accepted a signed number as HH:MM", in)
		})
	}
}
