package gateway

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// TestSealedBatchWhoseRecordLagsReadsFinalizing: validation seals salvo's
// batch and only then records itself; a small batch can end in between.
// Read then, the batch is finalizing (its files not written yet), never
// completed without an output file — and a batch that stopped before it
// was sealed keeps salvo's status.
func TestSealedBatchWhoseRecordLagsReadsFinalizing(t *testing.T) {
	s := &Server{}
	now := int64(1_700_000_000)
	rec := batchRecord{ID: "batch_x", LeaseUntil: now * 1000}
	b := api.BatchObject{ID: "batch_x", Status: string(lifecycle.BatchCompleted),
		BatchTimes: api.BatchTimes{CompletedAt: &now}}
	b.Salvo.Sealed = true

	o := s.object(rec, b)
	require.Equal(t, string(lifecycle.BatchFinalizing), o.Status)
	require.Nil(t, o.CompletedAt)
	require.Nil(t, o.OutputFileID)
	require.True(t, validated(rec, b))

	b.Status, b.Salvo.Sealed = string(lifecycle.BatchCancelled), false
	require.Equal(t, string(lifecycle.BatchCancelled), s.object(rec, b).Status,
		"cancelled before its file was checked")
	require.False(t, validated(rec, b))

	b.Salvo.Sealed, b.CancellingAt = true, &now
	require.Equal(t, string(lifecycle.BatchCancelled), s.object(rec, b).Status,
		"a cancel seals a batch at what it has: cancelled during validation")

	// Validated and cancelled: cancelling until its files are written,
	// as OpenAI's cancel goes, then cancelled with them.
	rec.Validated = true
	o = s.object(rec, b)
	require.Equal(t, string(lifecycle.BatchCancelling), o.Status)
	require.NotNil(t, o.CancellingAt)
	require.Nil(t, o.CancelledAt)
	rec.Built, rec.ErrorFileID = true, "file-batch_x-errors"
	o = s.object(rec, b)
	require.Equal(t, string(lifecycle.BatchCancelled), o.Status)
	require.Equal(t, "file-batch_x-errors", *o.ErrorFileID)
	rec.Validated, rec.Built, rec.ErrorFileID = false, false, ""

	b.CancellingAt = nil
	require.False(t, validated(batchRecord{Failed: true}, b), "a refused file is never validated")
}
