package models

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/stepcast/stepcast"
)

// Modes of an attributes upload.
const (
	// ImportPartial applies the good rows batch by batch and reports the
	// bad ones. The default.
	ImportPartial = "partial"
	// ImportAll applies the whole file in one transaction, or nothing when
	// any row is bad.
	ImportAll = "all"
)

// Limits of attributes, shared by every way of setting them.
const (
	// MaxAttributes is the most attributes a friend has.
	MaxAttributes = 100
	// MaxAttributeKey is the longest attribute key, in characters.
	MaxAttributeKey = 64
	// MaxAttributeValue is the longest attribute value, in bytes.
	MaxAttributeValue = 1024
	// MaxRejectedListed is how many bad rows of an upload are listed; the
	// rest are only counted.
	MaxRejectedListed = 1000
	// importBatch is how many rows of an upload go into one transaction
	// (partial mode) or one round of reads and writes (all mode).
	importBatch = 500
)

// Genders is what the gender attribute may hold.
var Genders = []string{"male", "female", "other", "unknown"}

var lineUserID = regexp.MustCompile(`^U[0-9a-f]{32}$`)

// AttributeImport is the outcome of an attributes upload.
type AttributeImport struct {
	// Applied counts the rows whose attributes landed.
	Applied int
	// Rejected lists the first MaxRejectedListed bad rows, in file order.
	Rejected []RejectedRow
	// RejectedCount counts every bad row.
	RejectedCount int
}

// RejectedRow is a bad row of an upload. Line is the file line the row
// starts on; the header is line 1.
type RejectedRow struct {
	Line    int
	UserID  string
	Message string
}

func (a *AttributeImport) reject(line int, userID, msg string) {
	a.RejectedCount++
	if len(a.Rejected) < MaxRejectedListed {
		a.Rejected = append(a.Rejected, RejectedRow{Line: line, UserID: userID, Message: msg})
	}
}

// UploadReadError is a failure to read the upload itself (the body broke
// off, or went over its size limit), as opposed to bad content.
type UploadReadError struct {
	// Line is the last file line read.
	Line int
	Err  error
}

func (e *UploadReadError) Error() string {
	return fmt.Sprintf("models: reading the upload after line %d: %v", e.Line, e.Err)
}

func (e *UploadReadError) Unwrap() error { return e.Err }

// ImportAttributesCSV sets the attributes of the channel's friends from a
// CSV file (UTF-8, optional BOM): a header row `userId,key,key...`, then
// one row per friend; an empty cell removes the key. It streams: rows are
// read, checked and written importBatch at a time, so a big file never sits
// in memory.
//
// In ImportPartial mode each batch is its own transaction; bad rows are
// reported and the others land. In ImportAll mode the whole file is one
// transaction, and a bad row makes it an EINVALID error listing each bad
// row (path "line N"), with nothing applied. A bad header is an EINVALID
// error in both modes, with nothing applied.
//
// The result is never nil, also with an error: in partial mode the rows
// applied before a failure stay applied. A failure to read r is an
// *UploadReadError.
func (s *Store) ImportAttributesCSV(ctx context.Context, channelID uint, r io.Reader, mode string) (*AttributeImport, error) {
	res := &AttributeImport{Rejected: []RejectedRow{}}
	if mode != ImportPartial && mode != ImportAll {
		return res, stepcast.Errorf(stepcast.EINVALID, "mode %q is not %q or %q", mode, ImportPartial, ImportAll)
	}
	in, err := newAttributeReader(r)
	if err != nil {
		return res, err
	}
	if mode == ImportPartial {
		for {
			rows, err := in.next(importBatch)
			if err != nil {
				return res, err
			}
			if len(rows) == 0 {
				return res, nil
			}
			// The batch's counts join res only once it committed.
			var batch AttributeImport
			err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				batch = AttributeImport{}
				return applyAttributeRows(tx, channelID, in.keys, rows, &batch)
			})
			if err != nil {
				return res, dbError(err, "friend attributes")
			}
			res.Applied += batch.Applied
			for _, rj := range batch.Rejected {
				res.reject(rj.Line, rj.UserID, rj.Message)
			}
			res.RejectedCount += batch.RejectedCount - len(batch.Rejected)
		}
	}

	errBadRows := errors.New("bad rows")
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for {
			rows, err := in.next(importBatch)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				break
			}
			if err := applyAttributeRows(tx, channelID, in.keys, rows, res); err != nil {
				return err
			}
		}
		if res.RejectedCount > 0 {
			return errBadRows
		}
		return nil
	})
	switch {
	case errors.Is(err, errBadRows):
		res.Applied = 0
		msg := fmt.Sprintf("%d rows are not valid; nothing was applied", res.RejectedCount)
		if res.RejectedCount == 1 {
			msg = "1 row is not valid; nothing was applied"
		}
		if res.RejectedCount > len(res.Rejected) {
			msg += fmt.Sprintf(" (the first %d are listed)", len(res.Rejected))
		}
		ps := make([]stepcast.Problem, len(res.Rejected))
		for i, rj := range res.Rejected {
			ps[i] = stepcast.Problem{Path: fmt.Sprintf("line %d", rj.Line), Message: rowMessage(rj)}
		}
		return res, &stepcast.Error{Code: stepcast.EINVALID, Message: msg, Problems: ps}
	case err != nil:
		res.Applied = 0
		var ue *UploadReadError
		if errors.As(err, &ue) {
			return res, err
		}
		return res, dbError(err, "friend attributes")
	}
	return res, nil
}

func rowMessage(rj RejectedRow) string {
	if rj.UserID == "" {
		return rj.Message
	}
	return fmt.Sprintf("userId %s: %s", rj.UserID, rj.Message)
}

// attributeRow is one data row of an upload: checked on its own (problem
// set when bad) but not yet against the database.
type attributeRow struct {
	line    int
	userID  string
	values  []string
	problem string
}

// attributeReader reads an upload's rows.
type attributeReader struct {
	r    *csv.Reader
	keys []string
	line int
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// newAttributeReader reads and checks the header.
func newAttributeReader(r io.Reader) (*attributeReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	in := &attributeReader{r: cr}

	header, err := cr.Read()
	var pe *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return nil, headerError(stepcast.Problem{Path: "line 1", Message: "the file is empty; the first line must be the header: userId, then one column per attribute"})
	case errors.As(err, &pe):
		return nil, headerError(stepcast.Problem{Path: "line 1", Message: fmt.Sprintf("the header is not valid CSV: %v", pe.Err)})
	case err != nil:
		return nil, &UploadReadError{Line: 0, Err: err}
	}
	in.line, _ = cr.FieldPos(0)
	var ps []stepcast.Problem
	add := func(col int, format string, args ...any) {
		ps = append(ps, stepcast.Problem{Path: fmt.Sprintf("line %d column %d", in.line, col), Message: fmt.Sprintf(format, args...)})
	}
	if first := strings.TrimSpace(header[0]); !strings.EqualFold(first, "userId") {
		add(1, "the first column must be userId, not %q", first)
	}
	if len(header) < 2 {
		add(1, "the header names no attribute: add one column per attribute after userId")
	}
	if len(header)-1 > MaxAttributes {
		add(MaxAttributes+2, "the header names %d attributes; at most %d", len(header)-1, MaxAttributes)
	}
	seen := map[string]int{}
	for i, h := range header[1:] {
		col := i + 2
		k := strings.TrimSpace(h)
		switch {
		case k == "":
			add(col, "the column name is empty")
		case !utf8.ValidString(k):
			add(col, "the column name is not valid UTF-8")
		case utf8.RuneCountInString(k) > MaxAttributeKey:
			add(col, "the column name %q is over %d characters", k, MaxAttributeKey)
		case strings.EqualFold(k, "userId"):
			add(col, "userId is the first column only")
		case seen[k] != 0:
			add(col, "the column %q is also column %d", k, seen[k])
		default:
			seen[k] = col
		}
		in.keys = append(in.keys, k)
	}
	if len(ps) > 0 {
		return nil, headerError(ps...)
	}
	return in, nil
}

func headerError(ps ...stepcast.Problem) error {
	return &stepcast.Error{Code: stepcast.EINVALID, Message: "the CSV header is not valid; nothing was applied", Problems: ps}
}

// next reads up to n rows; none at the end of the file.
func (in *attributeReader) next(n int) ([]attributeRow, error) {
	var rows []attributeRow
	for len(rows) < n {
		rec, err := in.r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			in.line = pe.Line
			row := attributeRow{line: pe.StartLine, problem: fmt.Sprintf("not valid CSV: %v", pe.Err)}
			if len(rec) > 0 && lineUserID.MatchString(strings.TrimSpace(rec[0])) {
				row.userID = strings.TrimSpace(rec[0])
			}
			rows = append(rows, row)
			continue
		}
		if err != nil {
			return nil, &UploadReadError{Line: in.line, Err: err}
		}
		in.line, _ = in.r.FieldPos(0)
		rows = append(rows, in.check(in.line, rec))
	}
	return rows, nil
}

// check checks a row on its own.
func (in *attributeReader) check(line int, rec []string) attributeRow {
	row := attributeRow{line: line, userID: strings.TrimSpace(rec[0])}
	if len(rec) != len(in.keys)+1 {
		row.problem = fmt.Sprintf("the row has %d columns; the header has %d", len(rec), len(in.keys)+1)
		if !lineUserID.MatchString(row.userID) {
			row.userID = ""
		}
		return row
	}
	if !lineUserID.MatchString(row.userID) {
		row.problem = fmt.Sprintf("%q is not a LINE user ID (U followed by 32 lower-case hex digits)", truncate(row.userID, 40))
		row.userID = ""
		return row
	}
	var problems []string
	row.values = make([]string, len(in.keys))
	for i, k := range in.keys {
		v, msg := CheckAttribute(k, strings.TrimSpace(rec[i+1]))
		if msg != "" {
			problems = append(problems, k+": "+msg)
			continue
		}
		row.values[i] = v
	}
	if len(problems) > 0 {
		row.problem = strings.Join(problems, "; ")
		row.values = nil
	}
	return row
}

// CheckAttribute checks a value and returns it as stored: ages as plain
// numbers, genders in lower case. Empty removes the key and is always fine.
func CheckAttribute(key, v string) (string, string) {
	switch {
	case v == "":
		return "", ""
	case !utf8.ValidString(v):
		return "", "the value is not valid UTF-8"
	case len(v) > MaxAttributeValue:
		return "", fmt.Sprintf("the value is %d bytes; at most %d", len(v), MaxAttributeValue)
	}
	switch key {
	case "age":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 150 || strings.ContainsAny(v, "+-") {
			return "", fmt.Sprintf("%q is not a whole number from 0 to 150", truncate(v, 40))
		}
		return strconv.Itoa(n), ""
	case "gender":
		g := strings.ToLower(v)
		for _, ok := range Genders {
			if g == ok {
				return g, ""
			}
		}
		return "", fmt.Sprintf("%q is not one of %s", truncate(v, 40), strings.Join(Genders, ", "))
	}
	return v, ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// applyAttributeRows applies a batch in tx, in file order, so that a
// friend named twice ends with the later row's values. Friends are locked
// in ID order, so concurrent uploads do not deadlock.
func applyAttributeRows(tx *gorm.DB, channelID uint, keys []string, rows []attributeRow, res *AttributeImport) error {
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		if r.problem == "" {
			ids = append(ids, r.userID)
		}
	}
	type friendAttrs struct {
		id      uint
		before  string
		attrs   map[string]string
		changed bool
	}
	friends := map[string]*friendAttrs{}
	if len(ids) > 0 {
		q := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id", "user_id", "attributes")
		if tx.Dialector.Name() == "postgres" {
			// One array parameter rather than 500: the statement's plan
			// stays an index lookup once PostgreSQL caches it. The IDs
			// match lineUserID, so the array literal needs no quoting.
			q = q.Where("channel_id = ? AND user_id = ANY(CAST(? AS text[]))", channelID, "{"+strings.Join(ids, ",")+"}")
		} else {
			q = q.Where("channel_id = ? AND user_id IN ?", channelID, ids)
		}
		var found []Friend
		err := q.Order("id").Find(&found).Error
		if err != nil {
			return err
		}
		for i := range found {
			f := &found[i]
			friends[f.UserID] = &friendAttrs{id: f.ID, before: f.Attributes, attrs: f.AttributeMap()}
		}
	}
	for _, r := range rows {
		if r.problem != "" {
			res.reject(r.line, r.userID, r.problem)
			continue
		}
		f := friends[r.userID]
		if f == nil {
			res.reject(r.line, r.userID, "no friend with this user ID on the channel")
			continue
		}
		n := len(f.attrs)
		for i, k := range keys {
			_, has := f.attrs[k]
			switch {
			case r.values[i] == "" && has:
				n--
			case r.values[i] != "" && !has:
				n++
			}
		}
		if n > MaxAttributes {
			res.reject(r.line, r.userID, fmt.Sprintf("the friend would have %d attributes; at most %d", n, MaxAttributes))
			continue
		}
		for i, k := range keys {
			if r.values[i] == "" {
				delete(f.attrs, k)
			} else {
				f.attrs[k] = r.values[i]
			}
		}
		f.changed = true
		res.Applied++
	}

	// One UPDATE for the batch, from a VALUES list of (id, attributes).
	var (
		values strings.Builder
		args   = []any{tx.NowFunc()}
	)
	for _, f := range friends {
		if !f.changed {
			continue
		}
		b, _ := json.Marshal(f.attrs)
		if string(b) == f.before {
			continue
		}
		if len(args) > 1 {
			values.WriteString(", ")
		}
		values.WriteString("(CAST(? AS BIGINT), ?)")
		args = append(args, f.id, string(b))
	}
	if len(args) == 1 {
		return nil
	}
	return tx.Exec("UPDATE friends SET attributes = v.column2, updated_at = ? FROM (VALUES "+values.String()+") AS v WHERE friends.id = v.column1", args...).Error
}
