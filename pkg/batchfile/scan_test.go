package batchfile_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/batchfile"
)

const scanLine = `{"custom_id":"%s","method":"POST","url":"%s","body":{"model":"m","messages":[]}}`

func scanInput(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

func line(id, url string) string {
	return strings.Replace(strings.Replace(scanLine, "%s", id, 1), "%s", url, 1)
}

// TestScanStreamsGoodLinesAndReportsBadOnes: good lines reach fn in order,
// bad ones reach bad with their line and field; the first good line sets
// the file's endpoint, or the batch's endpoint is required of every line.
func TestScanStreamsGoodLinesAndReportsBadOnes(t *testing.T) {
	in := scanInput(line("a", "/v1/chat/completions"), line("b", "/v1/embeddings"), line("a", "/v1/chat/completions"), line("c", "/v1/chat/completions"))
	var good []int
	var bad []*batchfile.LineError
	st, err := batchfile.Scan(strings.NewReader(in), batchfile.ScanOptions{BatchID: "b1"},
		func(l batchfile.Line) error { good = append(good, l.Number); return nil },
		func(le *batchfile.LineError) { bad = append(bad, le) })
	require.NoError(t, err)
	require.Equal(t, []int{1, 4}, good)
	require.Equal(t, batchfile.Stats{Lines: 4, Requests: 2, Errors: 2, Bytes: int64(len(in)), Endpoint: "/v1/chat/completions"}, st)
	require.Equal(t, batchfile.CodeMixedEndpoints, bad[0].Code)
	require.Equal(t, "url", bad[0].Field)
	require.Equal(t, batchfile.CodeDuplicateCustomID, bad[1].Code)

	// With the batch's endpoint given, every other url is a mismatch,
	// the first line's included.
	bad = nil
	_, err = batchfile.Scan(strings.NewReader(in), batchfile.ScanOptions{BatchID: "b1", Endpoint: "/v1/embeddings"},
		func(batchfile.Line) error { return nil }, func(le *batchfile.LineError) { bad = append(bad, le) })
	require.NoError(t, err)
	require.Len(t, bad, 3)
	for _, le := range bad {
		require.Equal(t, batchfile.CodeURLMismatch, le.Code, "line %d", le.Line)
	}
	require.Equal(t, []int{1, 3, 4}, []int{bad[0].Line, bad[1].Line, bad[2].Line})
}

// TestScanStopsAtMaxBytesAndOnAnErrorFromFn.
func TestScanStopsAtMaxBytesAndOnAnErrorFromFn(t *testing.T) {
	in := scanInput(line("a", "/v1/chat/completions"), line("b", "/v1/chat/completions"))
	_, err := batchfile.Scan(strings.NewReader(in), batchfile.ScanOptions{BatchID: "b1", MaxBytes: 100},
		func(batchfile.Line) error { return nil }, func(*batchfile.LineError) {})
	require.ErrorIs(t, err, batchfile.ErrFileTooLarge)

	stop := errors.New("stop")
	n := 0
	_, err = batchfile.Scan(strings.NewReader(in), batchfile.ScanOptions{BatchID: "b1"},
		func(batchfile.Line) error { n++; return stop }, func(*batchfile.LineError) {})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n)
}

// TestScanOneModel: with OneModel every line names the first good line's
// model.
func TestScanOneModel(t *testing.T) {
	in := scanInput(line("a", "/v1/chat/completions"),
		strings.Replace(line("b", "/v1/chat/completions"), `"model":"m"`, `"model":"other"`, 1))
	var bad []*batchfile.LineError
	_, err := batchfile.Scan(strings.NewReader(in), batchfile.ScanOptions{BatchID: "b1", OneModel: true},
		func(batchfile.Line) error { return nil }, func(le *batchfile.LineError) { bad = append(bad, le) })
	require.NoError(t, err)
	require.Len(t, bad, 1)
	require.Equal(t, batchfile.CodeModelMismatch, bad[0].Code)
	require.Equal(t, 2, bad[0].Line)
	require.Equal(t, "body.model", bad[0].Field)

	bad = nil
	_, err = batchfile.Scan(strings.NewReader(in), batchfile.ScanOptions{BatchID: "b1"},
		func(batchfile.Line) error { return nil }, func(le *batchfile.LineError) { bad = append(bad, le) })
	require.NoError(t, err)
	require.Empty(t, bad, "salvo itself routes any mix of models")
}
