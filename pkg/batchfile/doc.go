// Package batchfile reads and writes OpenAI Batch API files.
//
// Parse reads an input file — JSONL, one request per line:
//
//	{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini",...}}
//
// into lifecycle.Requests. A bad line never takes the good ones down with
// it: Parse returns every good request and a *LineError per bad line, each
// naming the line number and the field ("line 7: body.model: is
// required"). Blank lines are skipped (they still count for line numbers);
// a custom_id repeated within the file is an error on the later line.
// Request ids are derived from the batch id and the line number, so
// parsing the same file for the same batch always yields the same ids.
//
// WriteOutput writes the two OpenAI result files, ordered by input line:
// the output file (one line per completed request,
// {"id","custom_id","response":{"status_code","request_id","body"},"error":null})
// and the error file (every request that did not complete, and every input
// line error with its line number). ReadOutput reads either file back.
package batchfile
