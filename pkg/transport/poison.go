package transport

import "github.com/salvo-run/salvo/pkg/lifecycle"

// PoisonKind says why the queue gives up on a request message.
type PoisonKind string

const (
	// PoisonMalformed is a message that is not a valid request: a body that
	// does not decode or validate, a subject that does not match its body
	// or that no model consumer fetches, a result subject a result may not
	// be published to.
	PoisonMalformed PoisonKind = "malformed"
	// PoisonMaxDeliveries is a valid request JetStream delivered
	// Config.MaxDeliver times without an ack and will not deliver again.
	PoisonMaxDeliveries PoisonKind = "max_deliveries"
	// PoisonUnrouted is a valid request for a model no worker routes: this
	// worker cannot route it and the server holds no consumer of the model
	// (one exists only while a worker that routes it pulls, or did within
	// the queue's model inactive threshold). It was never delivered.
	PoisonUnrouted PoisonKind = "unrouted"
)

// Poison is a request message the queue gives up on. The queue only
// reports it (ConsumeOptions.OnPoison); what it means for the request is
// the caller's to decide.
type Poison struct {
	Kind PoisonKind
	// Request is the decoded request for PoisonMaxDeliveries. For
	// PoisonMalformed it holds only what could be read, unvalidated: ID
	// (from the body, else the Nats-Msg-Id header: the request id after
	// the batch token, or the whole header), BatchID and Model (from
	// the body, else the subject), CustomID, and ResultSubject when it is
	// one a result may go to. Any of them may be empty, and ID may be one
	// lifecycle.Request.Validate refuses.
	Request *lifecycle.Request
	// Cause says what is wrong with a malformed message: a
	// *lifecycle.FieldError chain naming the field. Nil for
	// PoisonMaxDeliveries.
	Cause error
	// Deliveries counts the message's deliveries (0 for a message on a
	// subject no consumer fetches).
	Deliveries uint64
	// Subject and StreamSeq locate the message in the REQUESTS stream.
	Subject   string
	StreamSeq uint64
}
