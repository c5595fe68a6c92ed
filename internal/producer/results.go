package producer

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

// ResultsOptions say which batch's results to write where.
type ResultsOptions struct {
	BatchID string
	// Output is the path of the output file (completed requests); "" for
	// none.
	Output string
	// Errors is the path of the error file (every other request, and the
	// input's bad lines when Input is set); "" for none.
	Errors string
	// Input is the batch's input file, optional: its bad lines go to the
	// error file too, each at its line, keeping its custom_id when it has
	// one.
	Input string
	// MaxRequests and MaxBytes must be what the submit used when Input is
	// set (0: the defaults).
	MaxRequests int
	MaxBytes    int64
	// Prefix is the deployment's subject prefix ("" for salvo).
	Prefix string
	Logger *zerolog.Logger
	// OnResult, when set, sees every result read (its body resolved),
	// before its line is written: the gateway sums the usage with it.
	OnResult func(*lifecycle.Result)
}

// Written counts the lines written to each file, and the batch's requests
// that have no result yet (they are left out).
type Written struct {
	Output  int
	Errors  int
	Missing int64
	// Batch is the batch's status when the results were read.
	Status lifecycle.BatchStatus
}

// spot is where one input line's output line sits in the spool.
type spot struct {
	line int
	off  int64
	n    int32
	out  bool // the output file, else the error file
}

// WriteResults writes the batch's results as the OpenAI output and error
// files, ordered by input line, one line per request: should the stream
// hold two lines for one request (escalation: its failure, then its racing
// copy's completed line), the completed one is written (lifecycle.ReplacesLine).
// In bounded memory: each result is encoded
// once into a temporary spool file as it is read from the stream (bodies
// stored by reference in the object store are fetched on the way), with a
// 32-byte index entry per line written (its input line and where it sits);
// the entries are sorted by line and the files written from the spool in
// that order. Memory grows with the lines written, never with the line
// numbers the ids claim.
func WriteResults(ctx context.Context, nc *nats.Conn, o ResultsOptions) (Written, error) {
	var w Written
	c := client.New(nc, o.Prefix)
	b, err := c.Batch(ctx, o.BatchID)
	if err != nil {
		return w, err
	}
	w.Status = lifecycle.BatchStatus(b.Status)
	q, err := queue.New(nc, queue.Config{Prefix: c.Prefix()}, logger(o.Logger))
	if err != nil {
		return w, err
	}
	spool, err := os.CreateTemp("", "salvo-results-*.jsonl")
	if err != nil {
		return w, err
	}
	defer func() { _ = spool.Close(); _ = os.Remove(spool.Name()) }()
	sw := bufio.NewWriterSize(spool, 1<<20)
	var (
		index []spot
		off   int64
		found int64
		// seen: the index entry and result state of each line with a
		// result, for the one-line-per-request rule (lifecycle.ReplacesLine)
		seen = map[int]seenLine{}
	)
	spoolLine := func(v batchfile.OutputLine, s *spot) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		data = append(data, '\n')
		if _, err := sw.Write(data); err != nil {
			return err
		}
		s.off, s.n = off, int32(len(data))
		off += int64(len(data))
		return nil
	}
	put := func(line int, v batchfile.OutputLine, out bool) error {
		s := spot{line: line, out: out}
		if err := spoolLine(v, &s); err != nil {
			return err
		}
		index = append(index, s)
		return nil
	}
	prefix := o.BatchID + "-"
	err = q.ReplayResults(ctx, o.BatchID, func(res *lifecycle.Result) error {
		line, ok := lineOf(res.ID, prefix)
		if !ok {
			return nil // not submitted by the producer: no input line to put it at
		}
		if err := q.ResolveBody(ctx, res); err != nil {
			return err
		}
		v, out := batchfile.ResultLine(batchfile.Line{Number: line, Request: &lifecycle.Request{ID: res.ID, CustomID: res.CustomID}}, res)
		if prev, ok := seen[line]; ok {
			// a second line for the request (escalation: a failure, then
			// its racing copy's completed line): one line per request
			if !lifecycle.ReplacesLine(&lifecycle.Result{State: prev.state}, res) {
				return nil
			}
			if o.OnResult != nil {
				o.OnResult(res)
			}
			seen[line] = seenLine{at: prev.at, state: res.State}
			index[prev.at].out = out
			return spoolLine(v, &index[prev.at]) // the replaced bytes stay unused in the spool
		}
		if o.OnResult != nil {
			o.OnResult(res)
		}
		found++
		seen[line] = seenLine{at: len(index), state: res.State}
		return put(line, v, out)
	})
	if err != nil {
		return w, err
	}
	if o.Input != "" {
		scan := batchfile.ScanOptions{BatchID: o.BatchID, MaxRequests: o.MaxRequests, MaxBytes: o.MaxBytes}
		if scan.MaxRequests == 0 {
			scan.MaxRequests = MaxRequestsDefault
		}
		if scan.MaxBytes == 0 {
			scan.MaxBytes = MaxBytesDefault
		}
		var perr error
		if _, err := scanFile(o.Input, scan, func(batchfile.Line) error { return nil }, func(le *batchfile.LineError) {
			if perr == nil {
				perr = put(le.Line, batchfile.OutputLine{
					CustomID: le.CustomID,
					Error:    &batchfile.OutputError{Code: le.Code, Message: le.Error(), Line: le.Line, Param: le.Field},
				}, false)
			}
		}); err != nil {
			return w, err
		}
		if perr != nil {
			return w, perr
		}
	}
	if err := sw.Flush(); err != nil {
		return w, err
	}
	// Stable: a rejected input line and a result cannot share a line, but
	// should a stray result claim a rejected line's number, both are kept.
	slices.SortStableFunc(index, func(a, b spot) int { return cmp.Compare(a.line, b.line) })
	w.Missing = max(0, b.RequestCounts.Total-found)
	return w, writeInOrder(spool, index, o, &w)
}

// seenLine is where a line's result sits in the index, and its state.
type seenLine struct {
	at    int
	state lifecycle.State
}

// writeInOrder copies the spooled lines to the output and error files in
// input line order.
func writeInOrder(spool io.ReaderAt, index []spot, o ResultsOptions, w *Written) error {
	open := func(path string) (*os.File, *bufio.Writer, error) {
		if path == "" {
			return nil, bufio.NewWriter(io.Discard), nil
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, nil, err
		}
		return f, bufio.NewWriterSize(f, 1<<20), nil
	}
	outF, outW, err := open(o.Output)
	if err != nil {
		return err
	}
	errF, errW, err := open(o.Errors)
	if err != nil {
		if outF != nil {
			_ = outF.Close()
		}
		return err
	}
	buf := make([]byte, 0, 64<<10)
	var werr error
	for _, s := range index {
		if werr != nil {
			break
		}
		if cap(buf) < int(s.n) {
			buf = make([]byte, s.n)
		}
		buf = buf[:s.n]
		if _, err := spool.ReadAt(buf, s.off); err != nil {
			werr = fmt.Errorf("read spool: %w", err)
			continue
		}
		if s.out {
			_, werr = outW.Write(buf)
			w.Output++
		} else {
			_, werr = errW.Write(buf)
			w.Errors++
		}
	}
	for _, f := range []struct {
		w *bufio.Writer
		f *os.File
	}{{outW, outF}, {errW, errF}} {
		werr = errors.Join(werr, f.w.Flush())
		if f.f != nil {
			werr = errors.Join(werr, f.f.Close())
		}
	}
	return werr
}

// lineOf reads the input line number from a request id the producer made
// (batchfile.RequestID: "<batch>-<line>", the number in its canonical
// form, so "b-07" is not line 7).
func lineOf(id, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0 && strconv.Itoa(n) == rest
}
