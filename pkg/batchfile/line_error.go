package batchfile

import "strconv"

// Line error codes, as they appear in the error file (the OpenAI batch
// errors.data codes where one fits).
const (
	CodeInvalidJSON       = "invalid_json_line"
	CodeInvalidRequest    = "invalid_request"
	CodeDuplicateCustomID = "duplicate_custom_id"
	CodeLineTooLong       = "line_too_long"
	CodeTooManyRequests   = "too_many_requests"
	CodeMixedEndpoints    = "mixed_endpoints"
	CodeURLMismatch       = "url_mismatch"
	CodeModelMismatch     = "model_mismatch"
)

// LineError is one bad input line. Its message names the line and the
// field: "line 7: body.model: is required".
type LineError struct {
	// Line is the 1-based input line number.
	Line int
	// Code classifies the problem (Code… constants).
	Code string
	// Field is the offending field ("custom_id", "body.model"), empty when
	// the line as a whole is wrong (invalid JSON, too long).
	Field string
	// Reason says what is wrong with it.
	Reason string
	// CustomID is the line's custom_id when it could be read.
	CustomID string
}

func (e *LineError) Error() string {
	if e.Field == "" {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Reason
	}
	return "line " + strconv.Itoa(e.Line) + ": " + e.Field + ": " + e.Reason
}
