package httpclient

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// maxSSELine bounds one SSE line so a hostile stream cannot grow a buffer
// without limit.
const maxSSELine = 16 << 20

// errSSELineTooLong is returned when an SSE line exceeds maxSSELine.
var errSSELineTooLong = errors.New("httpclient: sse line longer than 16 MiB")

// sseReader splits a text/event-stream body into events and returns each
// event's data (multi-line data joined with "\n").
type sseReader struct {
	r    *bufio.Reader
	data bytes.Buffer
	has  bool
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// next returns the next event's data, or io.EOF at the end of the stream.
// A final event without its blank line is incomplete and dropped, as the
// SSE specification says: the stream was cut in the middle of it.
func (s *sseReader) next() ([]byte, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			if s.has {
				return s.dispatch(), nil
			}
			continue
		}
		if line[0] == ':' {
			continue // comment / keep-alive
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) == "data" {
			if s.has {
				s.data.WriteByte('\n')
			}
			s.data.Write(value)
			s.has = true
		}
		// event:, id:, retry: carry nothing salvo needs.
	}
}

func (s *sseReader) dispatch() []byte {
	out := bytes.Clone(s.data.Bytes())
	s.data.Reset()
	s.has = false
	return out
}

// readLine returns one line without its terminator (\n, \r\n or \r\n).
func (s *sseReader) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxSSELine {
			return nil, errSSELineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, err // a line without its terminator is incomplete
		}
		return bytes.TrimRight(buf, "\r\n"), nil
	}
}

// sseErrorStatus reads an `{"error":…}` event: the status it stands for
// (error.code or error.status when it is 400-599, else 500) and whether the
// data is such an event at all.
func sseErrorStatus(data []byte) (int, bool) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte(`{"error"`)) {
		return 0, false
	}
	var ev struct {
		Error struct {
			Code   json.RawMessage `json:"code"`
			Status json.RawMessage `json:"status"`
		} `json:"error"`
	}
	if err := json.Unmarshal(trimmed, &ev); err != nil {
		return 500, true
	}
	for _, raw := range []json.RawMessage{ev.Error.Code, ev.Error.Status} {
		if code, ok := statusFromJSON(raw); ok {
			return code, true
		}
	}
	return 500, true
}

// statusFromJSON reads a number or numeric string in 400-599.
func statusFromJSON(raw json.RawMessage) (int, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	s := string(raw)
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 400 || n > 599 {
		return 0, false
	}
	return n, true
}
