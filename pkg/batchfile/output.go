package batchfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// CodeMissingResult marks, in the error file, a request whose result was
// never seen (the run stopped before it finished).
const CodeMissingResult = "missing_result"

// maxOutputLine bounds one line ReadOutput accepts.
const maxOutputLine = 64 << 20

// OutputLine is one line of the output or the error file (the OpenAI batch
// output shape).
type OutputLine struct {
	// ID is the request id; empty for input line errors (never submitted).
	ID       string       `json:"id,omitempty"`
	CustomID string       `json:"custom_id"`
	Response *Response    `json:"response"`
	Error    *OutputError `json:"error"`
}

// Response is the upstream's answer to a request.
type Response struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// OutputError says why a request did not complete, or what is wrong with an
// input line (then Line and Param name the line and field).
type OutputError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Param   string `json:"param,omitempty"`
}

// Written counts the lines of each file.
type Written struct {
	Output int
	Errors int
}

// WriteOutput writes the output file (one line per completed request) to
// out and the error file (every other request: failed, canceled, expired or
// without a result; and every input line error) to errs, both ordered by
// input line. results are keyed by request id; a result's body must already
// be resolved (queue.Client.ResolveBody).
func WriteOutput(out, errs io.Writer, p Parsed, results map[string]*lifecycle.Result) (Written, error) {
	type entry struct {
		line int
		out  bool
		v    OutputLine
	}
	entries := make([]entry, 0, len(p.Requests)+len(p.Errors))
	for _, l := range p.Requests {
		res := results[l.Request.ID]
		v, ok := ResultLine(l, res)
		entries = append(entries, entry{line: l.Number, out: ok, v: v})
	}
	for _, le := range p.Errors {
		entries = append(entries, entry{line: le.Line, v: OutputLine{
			CustomID: le.CustomID,
			Error:    &OutputError{Code: le.Code, Message: le.Error(), Line: le.Line, Param: le.Field},
		}})
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].line < entries[j].line })

	outW, errW := bufio.NewWriter(out), bufio.NewWriter(errs)
	outEnc, errEnc := json.NewEncoder(outW), json.NewEncoder(errW)
	outEnc.SetEscapeHTML(false)
	errEnc.SetEscapeHTML(false)
	var w Written
	for _, e := range entries {
		enc, count := errEnc, &w.Errors
		if e.out {
			enc, count = outEnc, &w.Output
		}
		if err := enc.Encode(e.v); err != nil {
			return w, fmt.Errorf("batchfile: write line for input line %d: %w", e.line, err)
		}
		*count++
	}
	if err := outW.Flush(); err != nil {
		return w, fmt.Errorf("batchfile: write output file: %w", err)
	}
	if err := errW.Flush(); err != nil {
		return w, fmt.Errorf("batchfile: write error file: %w", err)
	}
	return w, nil
}

// ResultLine is the output line of one request (res nil: its result is
// missing) and whether it belongs in
// the output file (completed) rather than the error file.
func ResultLine(l Line, res *lifecycle.Result) (OutputLine, bool) {
	v := OutputLine{ID: l.Request.ID, CustomID: l.Request.CustomID}
	if res == nil {
		v.Error = &OutputError{Code: CodeMissingResult, Message: "no result was received for this request"}
		return v, false
	}
	if res.Response != nil {
		v.Response = &Response{StatusCode: res.Response.StatusCode, RequestID: res.Response.RequestID, Body: res.Response.Body}
	}
	if res.State == lifecycle.StateCompleted {
		return v, true
	}
	if res.Error != nil {
		v.Error = &OutputError{Code: string(res.Error.Code), Message: res.Error.Message}
	} else {
		v.Error = &OutputError{Code: string(res.State), Message: "request ended " + string(res.State)}
	}
	return v, false
}

// ReadOutput reads an output or error file written by WriteOutput.
func ReadOutput(r io.Reader) ([]OutputLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, readBufferSize), maxOutputLine)
	var lines []OutputLine
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v OutputLine
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return lines, fmt.Errorf("batchfile: read output line %d: %w", n, err)
		}
		lines = append(lines, v)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return lines, fmt.Errorf("batchfile: read output: a line exceeds %d bytes: %w", maxOutputLine, err)
		}
		return lines, fmt.Errorf("batchfile: read output: %w", err)
	}
	return lines, nil
}
