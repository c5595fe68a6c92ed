package api_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestRequestGetRepliesWithTheRequestObject(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	now := b.clock.now
	b.backend.putRequest(lifecycle.Record{
		Ref: lifecycle.Ref{ID: "r1", BatchID: "b1"}, State: lifecycle.StateFailed, Attempt: 2,
		Model: "gpt-4o", CustomID: "c1", Status: 500, Published: true,
		Failure:   lifecycle.NewFailure(lifecycle.CodeNonRetriableStatus, 500, "upstream said no"),
		CreatedAt: now, ClaimedAt: now.Add(time.Second), StartedAt: now.Add(time.Second),
		FinishedAt: now.Add(3 * time.Second), UpdatedAt: now.Add(3 * time.Second),
	})
	got := b.ok(t, api.EndpointRequestGet, `{"id":"r1","batch_id":"b1"}`, nil)
	require.JSONEq(t, `{"id":"r1","object":"batch.request","batch_id":"b1","custom_id":"c1","model":"gpt-4o",
		"routed_model":null,"state":"failed","attempts":2,"status_code":500,
		"error":{"code":"non_retriable_status","message":"upstream said no"},"result_published":true,
		"created_at":1700000000,"claimed_at":1700000001,"started_at":1700000001,
		"finished_at":1700000003,"updated_at":1700000003}`, string(got))

	code, msg := b.fail(t, api.EndpointRequestGet, `{"id":"r2","batch_id":"b1"}`)
	require.Equal(t, api.CodeNotFound, code)
	require.Equal(t, `id: request "r2" not found in batch "b1"`, msg)
}

func TestRequestGetFindsAMalformedMessagesRecord(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	id := lifecycle.MalformedID(7)
	b.backend.putRequest(lifecycle.Record{Ref: lifecycle.Ref{ID: id}, State: lifecycle.StateFailed,
		Failure: lifecycle.NewFailure(lifecycle.CodeMalformedMessage, 0, "not JSON")})
	var got api.RequestObject
	b.ok(t, api.EndpointRequestGet, `{"id":"`+id+`"}`, &got)
	require.Equal(t, id, got.ID)
	require.Nil(t, got.BatchID)
}

func TestRequestCancelStoresThenPublishes(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.backend.putRequest(lifecycle.Record{Ref: lifecycle.Ref{ID: "r1", BatchID: "b1"}, State: lifecycle.StateProcessing, Model: "m"})
	var got api.RequestObject
	b.ok(t, api.EndpointRequestCancel, `{"id":"r1","batch_id":"b1"}`, &got)
	require.Equal(t, "canceled", got.State)
	require.Equal(t, []string{"CancelRequest b1/r1", "PublishCancel b1/r1", "Request b1/r1"}, b.backend.Calls())
}

func TestRequestCancelOfAFinishedRequestPublishesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.backend.putRequest(lifecycle.Record{Ref: lifecycle.Ref{ID: "r1", BatchID: "b1"}, State: lifecycle.StateCompleted, Model: "m"})
	var got api.RequestObject
	b.ok(t, api.EndpointRequestCancel, `{"id":"r1","batch_id":"b1"}`, &got)
	require.Equal(t, "completed", got.State)
	require.Equal(t, []string{"CancelRequest b1/r1", "Request b1/r1"}, b.backend.Calls())
}
