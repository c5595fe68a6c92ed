package lifecycle_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestFailureCodeRetriable(t *testing.T) {
	want := map[lifecycle.FailureCode]bool{
		lifecycle.CodeRetriableStatus:     true,
		lifecycle.CodeNonRetriableStatus:  false,
		lifecycle.CodeNetworkError:        true,
		lifecycle.CodeTimeout:             true,
		lifecycle.CodeTaskTerminated:      true,
		lifecycle.CodeRequestBuild:        false,
		lifecycle.CodeBatchCanceled:       false,
		lifecycle.CodeBatchExpired:        false,
		lifecycle.CodeUnroutedModel:       false,
		lifecycle.CodeRequestCanceled:     false,
		lifecycle.CodeSuperseded:          false,
		lifecycle.CodeMalformedMessage:    false,
		lifecycle.CodeMaxDeliveries:       false,
		lifecycle.CodeBatchNotFound:       false,
		lifecycle.CodeMessageLost:         false,
		lifecycle.CodeRateLimitedDeadline: false,
	}
	require.Len(t, lifecycle.FailureCodes, len(want), "every code is listed and tested")
	seen := map[lifecycle.FailureCode]bool{}
	for _, c := range lifecycle.FailureCodes {
		r, ok := want[c]
		require.True(t, ok, "untested code %s", c)
		require.False(t, seen[c], "code %s listed twice", c)
		seen[c] = true
		require.Equal(t, r, c.Retriable(), c)
		require.Regexp(t, `^[a-z_]+$`, string(c))
	}
	require.False(t, lifecycle.FailureCode("bogus").Retriable())
}

func TestFailureError(t *testing.T) {
	f := lifecycle.NewFailure(lifecycle.CodeRetriableStatus, 503, "upstream answered %d", 503)
	require.Equal(t, "retriable_status (status 503): upstream answered 503", f.Error())
	require.True(t, f.Retriable())
	n := lifecycle.NewFailure(lifecycle.CodeNetworkError, 0, "connection reset")
	require.Equal(t, "network_error: connection reset", n.Error())

	wrapped := fmt.Errorf("worker: call: %w", f)
	got, ok := lifecycle.AsFailure(wrapped)
	require.True(t, ok)
	require.Same(t, f, got)
	_, ok = lifecycle.AsFailure(errors.New("plain"))
	require.False(t, ok)
}
