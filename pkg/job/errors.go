package job

import (
	"errors"
	"strings"
)

// ErrInvalid is matched (with errors.Is) by every validation error of this
// package, so callers can tell a bad job from a failure of their own.
var ErrInvalid = errors.New("invalid job")

// FieldError says what is wrong with one field. Field is the JSON path of the
// field, such as "request.path" or "request.headers.X-Tenant".
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// ValidationError lists every problem found in one envelope.
type ValidationError struct {
	Problems []*FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid job: " + strings.Join(msgs, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// problems collects field errors; err returns nil when there are none.
type problems []*FieldError

func (p *problems) add(field, reason string) {
	*p = append(*p, &FieldError{Field: field, Reason: reason})
}

func (p *problems) addErr(err error) {
	if err == nil {
		return // the common case, spared the errors.As below
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		*p = append(*p, fe)
	} else if err != nil {
		p.add("", err.Error())
	}
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}
