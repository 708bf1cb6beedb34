// Package stepcast holds the vocabulary that every layer shares: the error
// codes. The admin API maps them to HTTP statuses in one place
// (apiserver/errors.go); everything else only says which code an error has.
package stepcast

import (
	"errors"
	"fmt"
)

// Error codes. They describe what went wrong from the caller's point of view,
// not where.
const (
	EINVALID      = "invalid"      // the input cannot be accepted as it is
	ENOTFOUND     = "not_found"    // the thing named does not exist
	ECONFLICT     = "conflict"     // the request clashes with the current state
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials
	ETOOLARGE     = "too_large"    // the request body is over its limit
	EUNAVAILABLE  = "unavailable"  // a dependency is down; the caller may retry
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Problem is one thing wrong with an input, located by its path in the
// document (for example "nodes[2].wait.at").
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error is an application error: a code, a message fit to show to the caller,
// and for invalid documents the list of every problem found.
type Error struct {
	Code     string
	Message  string
	Problems []Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s (%d problems, first: %s: %s)", e.Message, len(e.Problems), e.Problems[0].Path, e.Problems[0].Message)
}

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or EINTERNAL for errors that carry none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-facing message of err; errors without a code
// are internal and their details stay in the logs.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
