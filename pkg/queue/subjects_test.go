package queue

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func testSubjects() subjects { return subjects{prefix: "salvo", requests: "SALVO_REQUESTS"} }

func TestRequestSubjectRoundTrip(t *testing.T) {
	t.Parallel()
	s := testSubjects()
	cases := []struct {
		model, batch, subject string
	}{
		{"gpt-4o", "b1", "salvo.req.gpt-4o.b1"},
		{"gpt-4o", "", "salvo.req.gpt-4o._"},
		{"meta-llama/Llama-3.1-8B:free", "batch.with/dots", "salvo.req.meta-llama_2FLlama-3_2E1-8B_3Afree.batch_2Ewith_2Fdots"},
		{"a_b", "_", "salvo.req.a_5Fb._5F"},
		{"*", ">", "salvo.req._2A._3E"},
	}
	for _, c := range cases {
		subj, err := s.request(c.model, c.batch)
		require.NoError(t, err)
		require.Equal(t, c.subject, subj)
		r, err := s.parseRequest(subj)
		require.NoError(t, err, subj)
		require.Equal(t, requestSubject{modelToken: lifecycle.MustEncodeToken(c.model), model: c.model, batchID: c.batch}, r, subj)
		require.True(t, r.fetched())
		require.Equal(t, "salvo.req."+r.modelToken+".>", s.modelRequests(r.modelToken))
		require.NoError(t, s.checkRequest(subj, &lifecycle.Request{Model: c.model, BatchID: c.batch}))
	}
	_, err := s.request("", "b")
	require.Error(t, err)
}

// What parseRequest reads of subjects that are not request subjects:
// fetched ones reach a model consumer, the others are junk.
func TestParseRequestSubjectProblems(t *testing.T) {
	t.Parallel()
	s := testSubjects()
	cases := []struct {
		subject string
		field   string
		want    requestSubject
	}{
		{"salvo.req.m", "subject", requestSubject{}},
		{"salvo.res.b1", "subject", requestSubject{}},
		{"other.req.m.b1", "subject", requestSubject{}},
		{"salvo.req.bad_zz.b1", "model", requestSubject{modelToken: "bad_zz", batchID: "b1"}},
		{"salvo.req.m.b1.extra", "subject", requestSubject{modelToken: "m", model: "m"}},
		{"salvo.req.m.bad_zz", "batch_id", requestSubject{modelToken: "m", model: "m"}},
	}
	for _, c := range cases {
		r, err := s.parseRequest(c.subject)
		var fe *lifecycle.FieldError
		require.ErrorAs(t, err, &fe, c.subject)
		require.Equal(t, c.field, fe.Field, c.subject)
		require.Equal(t, c.want, r, c.subject)
		require.Equal(t, c.want.model != "", r.fetched(), c.subject)
	}
	err := s.checkRequest("salvo.req.other.b1", &lifecycle.Request{Model: "m", BatchID: "b1"})
	var fe *lifecycle.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "model", fe.Field)
}

func TestControlSubjectRoundTrip(t *testing.T) {
	t.Parallel()
	s := testSubjects()
	cases := []struct {
		subject string
		want    controlSubject
	}{
		{s.cancel("b1", ""), controlSubject{kind: KindCancel, batchID: "b1"}},
		{s.cancel("b.1", "r/1"), controlSubject{kind: KindCancel, batchID: "b.1", requestID: "r/1"}},
		{s.cancel("", "r1"), controlSubject{kind: KindCancel, requestID: "r1"}},
		{s.supersede("r.2"), controlSubject{kind: KindSupersede, requestID: "r.2"}},
		{s.hold(), controlSubject{kind: KindHold}},
	}
	for _, c := range cases {
		got, err := s.parseControl(c.subject)
		require.NoError(t, err, c.subject)
		require.Equal(t, c.want, got, c.subject)
	}
	require.Equal(t, "salvo.ctl.cancel.b_2E1.r_2F1", s.cancel("b.1", "r/1"))
	require.Equal(t, "salvo.ctl.supersede.r_2E2", s.supersede("r.2"))
	for _, bad := range []string{"salvo.ctl.cancel", "salvo.ctl.cancel.b.r.x", "salvo.ctl.supersede.b.r", "salvo.ctl.pause.b", "salvo.ctl.hold.x",
		"salvo.ctl.cancel.bad_zz", "salvo.ctl.supersede._", "salvo.req.m.b"} {
		_, err := s.parseControl(bad)
		require.ErrorIs(t, err, ErrInvalidSubject, bad)
	}
}

func TestSubjectsBuilt(t *testing.T) {
	t.Parallel()
	s := testSubjects()
	for got, want := range map[string]string{
		s.allRequests():                    "salvo.req.>",
		s.batchRequests("b/1"):             "salvo.req.*.b_2F1",
		s.batchRequests(""):                "salvo.req.*._",
		s.result("b1"):                     "salvo.res.b1",
		s.result(""):                       "salvo.res._",
		s.allResults():                     "salvo.res.>",
		s.batchEvent("b.1"):                "salvo.evt.batch.b_2E1",
		s.allEvents():                      "salvo.evt.>",
		s.allControl():                     "salvo.ctl.>",
		s.maxDeliveriesAdvisories():        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.SALVO_REQUESTS.>",
		s.maxDeliveriesAdvisory("model-m"): "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.SALVO_REQUESTS.model-m",
	} {
		require.Equal(t, want, got)
	}
}

func TestResultSubjectCheck(t *testing.T) {
	t.Parallel()
	s := testSubjects()
	for subject, ok := range map[string]bool{
		"client.inbox.results": true, "salvo.res.b1": true, "salvox.req.a": true,
		"salvo.req.m.b": false, "salvo.ctl.cancel.x": false, "salvo.evt.batch.b": false, "$JS.API.STREAM.DELETE.X": false,
		"a.*": false, "a.>": false, "a..b": false, "": false, "a b": false,
	} {
		err := s.checkResult(subject)
		if ok {
			require.NoError(t, err, subject)
		} else {
			require.ErrorIs(t, err, ErrInvalidSubject, subject)
		}
	}
}
