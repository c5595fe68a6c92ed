package queue

import (
	"errors"
	"fmt"
	"strings"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// subjects builds, parses and checks every subject the queue uses, as
// state's keys do for Redis keys: no other file spells a subject. p is the
// prefix, <model> lifecycle.EncodeToken(model), <batch>
// lifecycle.BatchToken(id) ("_" for batchless), <request>
// lifecycle.EncodeToken(id).
//
//	p.req.<model>.<batch>                     a request (REQUESTS stream)
//	p.res.<batch>                             a result (RESULTS stream)
//	p.evt.batch.<batch>                       a batch lifecycle event (RESULTS stream)
//	p.ctl.cancel.<batch>[.<request>]          cancel a batch or one request (core NATS)
//	p.ctl.supersede.<request>                 a request lost a race (core NATS)
//	<batch>.<id>                              Nats-Msg-Id of a request and its result (MsgID)
//	$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<REQUESTS stream>.<consumer>
//	                                          the server's max-deliveries advisory
//	model.<model>  (key)                      a model announcement in the DISCOVERY bucket
//	leader         (key)                      the discovery leader's lease in the DISCOVERY bucket
//	$KV.<DISCOVERY bucket>.model.<model>      the subject an announcement is published on
type subjects struct {
	prefix    string
	requests  string // the REQUESTS stream: its advisories carry its name
	discovery string // the DISCOVERY bucket: its keys' subjects carry its name
}

// The second token of every subject under the prefix.
const (
	nsRequest = "req"
	nsResult  = "res"
	nsControl = "ctl"
	nsEvent   = "evt"
)

// evtBatch is the token after <p>.evt. of batch lifecycle events.
const evtBatch = "batch"

// maxDeliveriesAdvisoryPrefix is the subject prefix of the server's
// MaxDeliver-exhausted advisories.
const maxDeliveriesAdvisoryPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// streamPurgeAPI is the JetStream API subject that purges a stream.
const streamPurgeAPI = "$JS.API.STREAM.PURGE."

func (s subjects) join(toks ...string) string {
	return s.prefix + "." + strings.Join(toks, ".")
}

// request is the subject of a request of model in batchID ("" for none).
func (s subjects) request(model, batchID string) (string, error) {
	tok, err := lifecycle.EncodeToken(model)
	if err != nil {
		return "", err
	}
	return s.join(nsRequest, tok, lifecycle.BatchToken(batchID)), nil
}

// allRequests (<p>.req.>) is the REQUESTS stream's subject and the filter
// of model discovery.
func (s subjects) allRequests() string { return s.join(nsRequest, ">") }

// modelRequests (<p>.req.<model>.>) is the filter of a model's consumer.
func (s subjects) modelRequests(modelTok string) string { return s.join(nsRequest, modelTok, ">") }

// batchRequests (<p>.req.*.<batch>) matches a batch's requests of every
// model.
func (s subjects) batchRequests(batchID string) string {
	return s.join(nsRequest, "*", lifecycle.BatchToken(batchID))
}

// Keys of the DISCOVERY bucket (discovery.go).
const (
	modelKeyPrefix = "model."
	// allModelKeys is what every consumer watches.
	allModelKeys = modelKeyPrefix + ">"
	// leaderKey holds the discovery leader's id; the bucket's TTL is its
	// lease.
	leaderKey = "leader"
)

// modelKey is the DISCOVERY key announcing a model token.
func (s subjects) modelKey(modelTok string) string { return modelKeyPrefix + modelTok }

// parseModelKey reads the model token of a DISCOVERY key; ok is false for
// a key that is not model.<token> with a token that decodes.
func (s subjects) parseModelKey(key string) (tok, model string, ok bool) {
	tok, found := strings.CutPrefix(key, modelKeyPrefix)
	if !found || strings.Contains(tok, ".") {
		return "", "", false
	}
	model, err := lifecycle.DecodeToken(tok)
	if err != nil {
		return "", "", false
	}
	return tok, model, true
}

// announcement is the subject a model's announcement is published on: a
// put of its key in the DISCOVERY bucket.
func (s subjects) announcement(modelTok string) string {
	return "$KV." + s.discovery + "." + s.modelKey(modelTok)
}

// requestSubject is what a request subject says.
type requestSubject struct {
	modelToken string // "" when the subject has no model token
	model      string // "" when the model token does not decode
	batchID    string // "" when batchless or unreadable
}

// fetched reports whether a model consumer fetches the subject: its model
// token decodes, so it has a consumer whose filter matches.
func (r requestSubject) fetched() bool { return r.model != "" }

// parseRequest reads <p>.req.<model>.<batch>. On error (a
// *lifecycle.FieldError chain naming the subject, model or batch_id) it
// still returns what it could read: a longer subject under a valid model
// token keeps its model, a subject with a bad model token keeps its batch.
func (s subjects) parseRequest(subject string) (requestSubject, error) {
	var r requestSubject
	rest, ok := strings.CutPrefix(subject, s.join(nsRequest, ""))
	toks := strings.Split(rest, ".")
	if !ok || len(toks) < 2 {
		return r, invalidRequest("subject", "%s is not <prefix>.req.<model>.<batch>", subject)
	}
	r.modelToken = toks[0]
	model, merr := lifecycle.DecodeToken(r.modelToken)
	if merr == nil {
		r.model = model
	}
	var berr error
	if len(toks) == 2 && toks[1] != lifecycle.BatchlessToken {
		r.batchID, berr = lifecycle.DecodeToken(toks[1])
	}
	switch {
	case merr != nil:
		return r, invalidRequest("model", "subject %s: model token: %v", subject, merr)
	case len(toks) > 2:
		return r, invalidRequest("subject", "%s is not <prefix>.req.<model>.<batch>", subject)
	case berr != nil:
		return r, invalidRequest("batch_id", "subject %s: batch token: %v", subject, berr)
	}
	return r, nil
}

// checkRequest checks that req was published on the subject its model and
// batch give.
func (s subjects) checkRequest(subject string, req *lifecycle.Request) error {
	want, err := s.request(req.Model, req.BatchID)
	if err != nil || subject != want {
		return invalidRequest("model", "model %q and batch_id %q belong on subject %s, not %s",
			req.Model, req.BatchID, want, subject)
	}
	return nil
}

func invalidRequest(field, format string, args ...any) error {
	return fmt.Errorf("lifecycle: invalid request: %w",
		&lifecycle.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// MsgID is the Nats-Msg-Id of a request message and of its result:
// "<batchtoken>.<id>", the batch token as in subjects ("_" for batchless),
// then the request id as it is. JetStream deduplicates publishes by
// Nats-Msg-Id across a whole stream, while a request id is unique only
// inside its batch, so the id alone would drop the same id in another
// batch. A batch token never contains '.', so the first '.' splits the two.
func MsgID(batchID, requestID string) string {
	return lifecycle.BatchToken(batchID) + "." + requestID
}

// idFromMsgID reads the request id from a Nats-Msg-Id of a message of
// batchID: the tail of MsgID(batchID, id), or the whole header when it is
// not in that form (a client that sets the bare id).
func idFromMsgID(batchID, msgID string) string {
	if id, ok := strings.CutPrefix(msgID, lifecycle.BatchToken(batchID)+"."); ok && id != "" {
		return id
	}
	return msgID
}

// result is the subject a batch's results are stored on.
func (s subjects) result(batchID string) string {
	return s.join(nsResult, lifecycle.BatchToken(batchID))
}

// allResults (<p>.res.>) is a subject of the RESULTS stream.
func (s subjects) allResults() string { return s.join(nsResult, ">") }

// batchEvent is the subject of a batch's lifecycle events.
func (s subjects) batchEvent(batchID string) string {
	return s.join(nsEvent, evtBatch, lifecycle.BatchToken(batchID))
}

// allEvents (<p>.evt.>) is a subject of the RESULTS stream.
func (s subjects) allEvents() string { return s.join(nsEvent, ">") }

// cancel is the subject that cancels a batch (requestID "") or one request.
func (s subjects) cancel(batchID, requestID string) string {
	if requestID == "" {
		return s.join(nsControl, string(KindCancel), lifecycle.BatchToken(batchID))
	}
	return s.join(nsControl, string(KindCancel), lifecycle.BatchToken(batchID), lifecycle.MustEncodeToken(requestID))
}

// supersede is the subject announcing that requestID lost a race.
func (s subjects) supersede(requestID string) string {
	return s.join(nsControl, string(KindSupersede), lifecycle.MustEncodeToken(requestID))
}

// hold is the subject announcing a budget hold.
func (s subjects) hold() string { return s.join(nsControl, string(KindHold)) }

// allControl (<p>.ctl.>) is what every worker subscribes to.
func (s subjects) allControl() string { return s.join(nsControl, ">") }

// controlSubject is what a control subject says.
type controlSubject struct {
	kind      lifecycle.ControlKind // KindCancel, KindSupersede or KindHold
	batchID   string                // "" for a batchless request and for a supersede
	requestID string                // "" for a whole batch
}

// parseControl reads <p>.ctl.cancel.<batch>[.<request>],
// <p>.ctl.supersede.<request> and <p>.ctl.hold.
func (s subjects) parseControl(subject string) (controlSubject, error) {
	var c controlSubject
	rest, ok := strings.CutPrefix(subject, s.join(nsControl, ""))
	if !ok {
		return c, fmt.Errorf("%w: %s is not a control subject", ErrInvalidSubject, subject)
	}
	toks := strings.Split(rest, ".")
	var err error
	switch {
	case toks[0] == string(KindCancel) && (len(toks) == 2 || len(toks) == 3):
		c.kind = KindCancel
		if toks[1] != lifecycle.BatchlessToken {
			if c.batchID, err = lifecycle.DecodeToken(toks[1]); err != nil {
				return c, fmt.Errorf("%w: %s: batch token: %w", ErrInvalidSubject, subject, err)
			}
		}
		if len(toks) == 2 {
			return c, nil
		}
	case toks[0] == string(KindSupersede) && len(toks) == 2:
		c.kind = KindSupersede
	case toks[0] == string(KindHold) && len(toks) == 1:
		c.kind = KindHold
		return c, nil
	default:
		return c, fmt.Errorf("%w: %s is not <prefix>.ctl.cancel.<batch>[.<request>], <prefix>.ctl.supersede.<request> or <prefix>.ctl.hold",
			ErrInvalidSubject, subject)
	}
	if c.requestID, err = lifecycle.DecodeToken(toks[len(toks)-1]); err != nil {
		return c, fmt.Errorf("%w: %s: request token: %w", ErrInvalidSubject, subject, err)
	}
	return c, nil
}

// maxDeliveriesAdvisories is the subject of every max-deliveries advisory
// of the REQUESTS stream: the ADVISORIES stream captures it.
func (s subjects) maxDeliveriesAdvisories() string {
	return maxDeliveriesAdvisoryPrefix + "." + s.requests + ".>"
}

// maxDeliveriesAdvisory is the subject of the max-deliveries advisories of
// one consumer of the REQUESTS stream.
func (s subjects) maxDeliveriesAdvisory(consumer string) string {
	return maxDeliveriesAdvisoryPrefix + "." + s.requests + "." + consumer
}

// checkResult refuses a subject a result must never be published to: not
// a literal subject, or inside salvo's request, control or event namespace,
// or a "$..." system subject.
func (s subjects) checkResult(subject string) error {
	if err := checkLiteral(subject); err != nil {
		return fmt.Errorf("%w: result subject %q: %w", ErrInvalidSubject, subject, err)
	}
	for _, reserved := range []string{s.join(nsRequest, ""), s.join(nsControl, ""), s.join(nsEvent, ""), "$"} {
		if strings.HasPrefix(subject, reserved) {
			return fmt.Errorf("%w: result subject %q is inside the reserved namespace %q", ErrInvalidSubject, subject, reserved)
		}
	}
	return nil
}

var errEmptySubject = errors.New("empty subject")

// checkLiteral accepts a literal subject: non-empty tokens, no wildcards,
// no whitespace.
func checkLiteral(subject string) error {
	if subject == "" {
		return errEmptySubject
	}
	if strings.ContainsAny(subject, " \t\r\n\x00") {
		return errors.New("contains whitespace or control characters")
	}
	for _, tok := range strings.Split(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return errors.New("empty token or wildcard")
		}
	}
	return nil
}
