package scenario_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/scenario"
)

// FuzzParseValidate feeds arbitrary documents to Parse and Validate. The
// seed corpus is in testdata/fuzz/FuzzParseValidate (the examples, minimal
// documents in JSON and YAML, cycles, deep conditions, odd YAML) plus the
// f.Add seeds below; a plain `go test` runs every seed.
//
// Properties:
//   - neither Parse nor Validate panics;
//   - their errors are *stepcast.Error with code EINVALID, and Validate's
//     list at least one problem, each with a path and a message;
//   - a JSON document is accepted only if it is one JSON value and nothing
//     more;
//   - a document that validates marshals with encoding/json (as the API
//     stores it), and that JSON parses and validates again to an equal
//     document and marshals to the same bytes.
func FuzzParseValidate(f *testing.F) {
	f.Add([]byte(`{"name":"n","start":{"type":"manual"},"nodes":[{"id":"a","type":"exit"}]}`))
	f.Add([]byte("name: n\nstart: {type: follow}\nnodes:\n  - {id: a, type: wait, wait: {after: 1h}}\n"))
	f.Add([]byte(`{"name":"n","start":{"type":"manual"},"nodes":[{"id":"a","type":"exit"}]}]`))
	f.Add([]byte(""))

	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := scenario.Parse(data)
		if err != nil {
			fuzzRequireInvalid(t, "Parse", err, false)
			return
		}
		if doc == nil {
			t.Fatal("Parse returned neither a document nor an error")
		}
		if trimmed := bytes.TrimSpace(data); trimmed[0] == '{' && !json.Valid(trimmed) {
			fuzzKnownBug(t, "Parse accepts a JSON document followed by trailing data: %q", trimmed)
			t.Fatalf("Parse accepted %q, which is not one JSON value", trimmed)
		}
		if err := doc.Validate(); err != nil {
			fuzzRequireInvalid(t, "Validate", err, true)
			return
		}

		canonical, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("a valid document does not marshal: %v", err)
		}
		again, err := scenario.Parse(canonical)
		if err != nil {
			t.Fatalf("the marshalled document %s does not parse: %v", canonical, err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("the marshalled document %s does not validate: %v", canonical, err)
		}
		twice, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("the re-parsed document does not marshal: %v", err)
		}
		if !bytes.Equal(canonical, twice) {
			t.Fatalf("marshal, parse, marshal is not stable:\n%s\n%s", canonical, twice)
		}
		fuzzNormalize(reflect.ValueOf(doc).Elem())
		fuzzNormalize(reflect.ValueOf(again).Elem())
		if !reflect.DeepEqual(doc, again) {
			t.Fatalf("the round trip changed the document:\nbefore %#v\nafter  %#v", doc, again)
		}
	})
}

func fuzzRequireInvalid(t *testing.T, what string, err error, problems bool) {
	t.Helper()
	e, ok := err.(*stepcast.Error)
	if !ok {
		t.Fatalf("%s: error %v (%T) is not a *stepcast.Error", what, err, err)
	}
	if e.Code != stepcast.EINVALID {
		t.Fatalf("%s: error %v has code %q, want %q", what, err, e.Code, stepcast.EINVALID)
	}
	if e.Message == "" {
		t.Fatalf("%s: error without a message", what)
	}
	if !problems {
		return
	}
	if len(e.Problems) == 0 {
		t.Fatalf("%s: error %v lists no problem", what, err)
	}
	for _, p := range e.Problems {
		if p.Path == "" || p.Message == "" {
			t.Fatalf("%s: problem %+v has no path or no message", what, p)
		}
	}
}

var (
	fuzzRawMessageType = reflect.TypeFor[json.RawMessage]()
	fuzzTimeType       = reflect.TypeFor[time.Time]()
)

// fuzzNormalize rewrites what the JSON round trip may legitimately change, in
// place: message objects to one canonical JSON text (the encoder compacts
// them and escapes <, >, &), times to UTC (the same instant may come back
// in another *Location) and empty slices to nil (omitempty drops them; no
// valid document gives an empty slice a meaning of its own).
func fuzzNormalize(v reflect.Value) {
	switch v.Type() {
	case fuzzRawMessageType:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		dec := json.NewDecoder(bytes.NewReader(v.Bytes()))
		dec.UseNumber()
		var x any
		if dec.Decode(&x) == nil {
			if b, err := json.Marshal(x); err == nil {
				v.SetBytes(b)
			}
		}
		return
	case fuzzTimeType:
		v.Set(reflect.ValueOf(v.Interface().(time.Time).UTC()))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			fuzzNormalize(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				fuzzNormalize(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		for i := range v.Len() {
			fuzzNormalize(v.Index(i))
		}
	case reflect.Array:
		for i := range v.Len() {
			fuzzNormalize(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			fuzzNormalize(e)
			v.SetMapIndex(k, e)
		}
	}
}

// fuzzKnownBug fails on an input that showed a bug, now fixed: the input
// stays in the corpus as a guard against its return.
func fuzzKnownBug(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Fatalf("regression of a fixed bug: "+format, args...)
}
