package gateway

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// TestEndedBatchShowsItsFinalStatusOnlyWithItsFiles: the record may lag
// salvo's batch — validation seals the batch and records itself after,
// and a small batch can end in between; a cancel can land while the file
// is still being read. Whatever the record says, a batch ended in salvo
// reads finalizing (a cancelled one cancelling) until its files are
// written, then its final status with them; it never reads final without
// them, nor goes back from final.
func TestEndedBatchShowsItsFinalStatusOnlyWithItsFiles(t *testing.T) {
	s := &Server{}
	now := time.Now().Unix()
	completed := api.BatchObject{ID: "batch_x", Status: string(lifecycle.BatchCompleted),
		BatchTimes: api.BatchTimes{CompletedAt: &now}}
	cancelled := api.BatchObject{ID: "batch_x", Status: string(lifecycle.BatchCancelled),
		BatchTimes: api.BatchTimes{CancellingAt: &now, CancelledAt: &now}}

	for _, validated := range []bool{false, true} {
		rec := batchRecord{ID: "batch_x", Validated: validated}

		o := s.object(rec, completed)
		require.Equal(t, string(lifecycle.BatchFinalizing), o.Status, "validated %v", validated)
		require.Nil(t, o.CompletedAt)
		require.Nil(t, o.OutputFileID)

		o = s.object(rec, cancelled)
		require.Equal(t, string(lifecycle.BatchCancelling), o.Status, "validated %v", validated)
		require.NotNil(t, o.CancellingAt)
		require.Nil(t, o.CancelledAt)

		rec.Built, rec.OutputFileID, rec.ErrorFileID = true, "file-batch_x-output", "file-batch_x-errors"
		o = s.object(rec, completed)
		require.Equal(t, string(lifecycle.BatchCompleted), o.Status)
		require.Equal(t, "file-batch_x-output", *o.OutputFileID)
		o = s.object(rec, cancelled)
		require.Equal(t, string(lifecycle.BatchCancelled), o.Status)
		require.Equal(t, "file-batch_x-errors", *o.ErrorFileID)
	}

	// Still running, the record not yet validated: validating; a refused
	// file: failed, whatever salvo's batch says.
	running := api.BatchObject{ID: "batch_x", Status: string(lifecycle.BatchInProgress)}
	require.Equal(t, string(lifecycle.BatchValidating), s.object(batchRecord{ID: "batch_x"}, running).Status)
	// Sealed, it has every request it will get: running, though the
	// record lags.
	running.Salvo.Sealed = true
	require.Equal(t, string(lifecycle.BatchInProgress), s.object(batchRecord{ID: "batch_x"}, running).Status)
	require.Equal(t, string(lifecycle.BatchInProgress), s.object(batchRecord{ID: "batch_x", Validated: true}, running).Status)
	require.Equal(t, string(lifecycle.BatchFailed), s.object(batchRecord{ID: "batch_x", Failed: true}, cancelled).Status)
}

// TestPendingWorkBuildsEveryEndedBatchOnceItsLeaseIsFree: the files of a
// batch ended in salvo are built once no validation holds its lease —
// also when the record never said validated (its gateway died between
// the seal and the record, or a cancel stopped the validation) — and
// nothing starts while a lease runs or for a refused file.
func TestPendingWorkBuildsEveryEndedBatchOnceItsLeaseIsFree(t *testing.T) {
	now := time.Now()
	held := now.Add(time.Minute).UnixMilli()
	ended := now.Add(-time.Second).UnixMilli()
	st := func(s lifecycle.BatchStatus) api.BatchObject { return api.BatchObject{Status: string(s)} }
	sealed := func(s lifecycle.BatchStatus) api.BatchObject {
		b := st(s)
		b.Salvo.Sealed = true
		return b
	}
	cases := []struct {
		name string
		rec  batchRecord
		b    api.BatchObject
		want work
	}{
		{"new batch", batchRecord{}, st(lifecycle.BatchValidating), workValidate},
		{"validation running", batchRecord{LeaseUntil: held}, st(lifecycle.BatchValidating), workNone},
		{"gateway died mid-validation", batchRecord{LeaseUntil: ended}, st(lifecycle.BatchValidating), workValidate},
		{"sealed, record lags, gateway died", batchRecord{LeaseUntil: ended}, sealed(lifecycle.BatchInProgress), workNone},
		{"sealed by an expiry during validation", batchRecord{LeaseUntil: ended}, sealed(lifecycle.BatchInProgress), workNone},
		{"sealed, record lags, ended", batchRecord{LeaseUntil: held}, st(lifecycle.BatchCompleted), workNone},
		{"record lagged, gateway died, ended", batchRecord{LeaseUntil: ended}, st(lifecycle.BatchCompleted), workBuild},
		{"record lagged, gateway died, cancelled", batchRecord{LeaseUntil: ended}, st(lifecycle.BatchCancelled), workBuild},
		{"cancelled during validation, still reading", batchRecord{LeaseUntil: held}, st(lifecycle.BatchCancelled), workNone},
		{"cancelling", batchRecord{}, st(lifecycle.BatchCancelling), workNone},
		{"validated, running", batchRecord{Validated: true}, st(lifecycle.BatchInProgress), workNone},
		{"validated, ended", batchRecord{Validated: true}, st(lifecycle.BatchExpired), workBuild},
		{"being built", batchRecord{Validated: true, LeaseUntil: held}, st(lifecycle.BatchCompleted), workNone},
		{"built", batchRecord{Validated: true, Built: true}, st(lifecycle.BatchCompleted), workNone},
		{"refused file", batchRecord{Failed: true}, st(lifecycle.BatchCancelled), workNone},
	}
	for _, c := range cases {
		require.Equal(t, c.want, pendingWork(c.rec, c.b, now), c.name)
	}
}
