package api_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestCreateRepliesWithTheOpenAIShapedBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	body := `{"id":"b1","completion_window":"1h","endpoint":"/v1/chat/completions","metadata":{"team":"x"},"total":2}`
	got := b.ok(t, api.EndpointBatchCreate, body, nil)
	require.JSONEq(t, `{
		"id":"b1","object":"batch","endpoint":"/v1/chat/completions","completion_window":"1h",
		"status":"validating","created_at":1700000000,"in_progress_at":null,"expires_at":1700003600,
		"finalizing_at":null,"completed_at":null,"failed_at":null,"expired_at":null,
		"cancelling_at":null,"cancelled_at":null,
		"request_counts":{"total":2,"completed":0,"failed":0},
		"metadata":{"team":"x"},
		"salvo":{"sealed":true,"counts":{"total":2,"pending":0,"in_progress":0,"completed":0,"failed":0,
			"canceled":0,"superseded":0,"expired":0},"results_published":0,"results_missing":0}}`, string(got))
	require.Equal(t, []string{"CreateBatch b1", "PublishBatchEvent b1 created"}, b.backend.Calls())
}

func TestCreateWithAnEmptyBodyMakesAnOpenBatchWithAnID(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	var got api.BatchObject
	b.ok(t, api.EndpointBatchCreate, "", &got)
	require.Regexp(t, regexp.MustCompile(`^batch_[0-9a-f]{24}$`), got.ID)
	require.Equal(t, "24h", got.CompletionWindow)
	require.Equal(t, *got.CreatedAt+24*3600, *got.ExpiresAt)
	require.Nil(t, got.Endpoint)
	require.Nil(t, got.Metadata)
	require.False(t, got.Salvo.Sealed)
	require.Zero(t, got.RequestCounts.Total)
}

func TestCreateRetriedWithTheSameContentsReturnsTheStoredBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	body := `{"id":"b1","completion_window":"1h","total":2}`
	var first, again api.BatchObject
	b.ok(t, api.EndpointBatchCreate, body, &first)
	b.clock.now = b.clock.now.Add(time.Minute) // creation time is not part of the identity
	b.ok(t, api.EndpointBatchCreate, body, &again)
	require.Equal(t, first, again)

	code, msg := b.fail(t, api.EndpointBatchCreate, `{"id":"b1","completion_window":"1h","total":3}`)
	require.Equal(t, api.CodeConflict, code)
	require.Equal(t, `total: batch "b1" exists with total 2, not 3`, msg)

	var events int
	for _, c := range b.backend.Calls() {
		if strings.HasPrefix(c, "PublishBatchEvent") {
			events++
		}
	}
	require.Equal(t, 1, events, "the created event is published for the new batch only")
}

func TestCreateSucceedsWhenTheCreatedEventIsNotPublished(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.backend.setFail("PublishBatchEvent", errors.New("nats: timeout"))
	var got api.BatchObject
	b.ok(t, api.EndpointBatchCreate, `{"id":"b1"}`, &got)
	require.Equal(t, "b1", got.ID)
}

func TestSealSetsTheTotalOnceAndNamesTheField(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.ok(t, api.EndpointBatchCreate, `{"id":"b1"}`, nil)
	var got api.BatchObject
	b.ok(t, api.EndpointBatchSeal, `{"id":"b1","total":3}`, &got)
	require.True(t, got.Salvo.Sealed)
	require.EqualValues(t, 3, got.RequestCounts.Total)

	code, msg := b.fail(t, api.EndpointBatchSeal, `{"id":"b1","total":4}`)
	require.Equal(t, api.CodeConflict, code)
	require.Equal(t, `total: batch "b1" exists with total 3, not 4`, msg)

	// An open batch that has seen 5 requests cannot be sealed at 3.
	b.backend.put(lifecycle.Batch{ID: "b2", CompletionWindow: "24h", Status: lifecycle.BatchInProgress,
		Counts: lifecycle.Counts{Total: 5, Pending: 5}, CreatedAt: b.clock.now, ExpiresAt: b.clock.now.Add(time.Hour)})
	code, msg = b.fail(t, api.EndpointBatchSeal, `{"id":"b2","total":3}`)
	require.Equal(t, api.CodeInvalidArgument, code)
	require.Equal(t, "total: 3 is fewer than the 5 requests seen", msg)
}

func TestGetReportsRequestCountsTheOpenAIWay(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	now := b.clock.now
	b.backend.put(lifecycle.Batch{ID: "b1", CompletionWindow: "24h", Status: lifecycle.BatchInProgress,
		Counts: lifecycle.Counts{Total: 10, Pending: 1, InProgress: 1, Completed: 3, Failed: 1, Canceled: 1, Superseded: 2, Expired: 1},
		Sealed: true, ResultsPublished: 4, CreatedAt: now, InProgressAt: now.Add(time.Second), ExpiresAt: now.Add(24 * time.Hour)})
	var got api.BatchObject
	b.ok(t, api.EndpointBatchGet, `{"id":"b1"}`, &got)
	require.Equal(t, api.RequestCounts{Total: 10, Completed: 5, Failed: 3}, got.RequestCounts,
		"failed counts failed, expired and canceled; completed counts superseded too (its racing copy completed)")
	require.Equal(t, "in_progress", got.Status)
	require.Equal(t, now.Unix()+1, *got.InProgressAt)
	require.Nil(t, got.FinalizingAt)
	require.EqualValues(t, 4, got.Salvo.ResultsPublished)
}

func TestUnknownBatchIsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	for _, ep := range []string{api.EndpointBatchGet, api.EndpointBatchCancel} {
		code, msg := b.fail(t, ep, `{"id":"nope"}`)
		require.Equal(t, api.CodeNotFound, code, ep)
		require.Equal(t, `id: batch "nope" not found`, msg, ep)
	}
	code, msg := b.fail(t, api.EndpointBatchSeal, `{"id":"nope","total":1}`)
	require.Equal(t, api.CodeNotFound, code)
	require.Equal(t, `id: batch "nope" not found`, msg)
}

func TestStoreFailuresAreUnavailableOrInternal(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.backend.setFail("Batch", fmt.Errorf("state: batch b1: %w: dial tcp: refused", lifecycle.ErrUnavailable))
	code, msg := b.fail(t, api.EndpointBatchGet, `{"id":"b1"}`)
	require.Equal(t, api.CodeUnavailable, code)
	require.NotContains(t, msg, "dial tcp", "backend details are logged, not sent")

	b.backend.setFail("Batch", errors.New("state: unexpected reply"))
	code, msg = b.fail(t, api.EndpointBatchGet, `{"id":"b1"}`)
	require.Equal(t, api.CodeInternal, code)
	require.Equal(t, "internal error", msg)
}

func TestListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	for _, id := range []string{"a", "b", "c"} {
		b.ok(t, api.EndpointBatchCreate, `{"id":"`+id+`"}`, nil)
		b.clock.now = b.clock.now.Add(time.Second)
	}
	var page api.BatchList
	b.ok(t, api.EndpointBatchList, `{"limit":2}`, &page)
	require.Equal(t, []string{"c", "b"}, batchIDs(page))
	require.Equal(t, "c", *page.FirstID)
	require.Equal(t, "b", *page.LastID)
	require.True(t, page.HasMore)

	b.ok(t, api.EndpointBatchList, `{"limit":2,"after":"b"}`, &page)
	require.Equal(t, []string{"a"}, batchIDs(page))
	require.False(t, page.HasMore)

	raw := b.ok(t, api.EndpointBatchList, `{"status":"completed"}`, &page)
	require.JSONEq(t, `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`, string(raw))

	b.ok(t, api.EndpointBatchList, "", &page)
	require.Len(t, page.Data, 3, "the default page holds 20")
}

func batchIDs(l api.BatchList) []string {
	ids := make([]string, 0, len(l.Data))
	for _, b := range l.Data {
		ids = append(ids, b.ID)
	}
	return ids
}
