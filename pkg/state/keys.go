package state

import "github.com/salvo-run/salvo/pkg/lifecycle"

// keys builds every Redis key of the store. All keys of one batch share the
// hash tag {<batch>}; a batchless request uses the tag {~ <id>}. Ids never
// contain spaces (lifecycle.Request.Validate), so no batch id produces a
// batchless tag and the two namespaces cannot collide.
type keys struct {
	prefix string
}

// batchlessTag is the hash-tag marker of a batchless request.
const batchlessTag = "~ "

// tag returns the hash tag for a ref: the batch id, or the batchless marker
// plus the request id.
func (k keys) tag(ref lifecycle.Ref) string {
	if ref.BatchID == "" {
		return batchlessTag + ref.ID
	}
	return ref.BatchID
}

// request is the hash holding one request's record.
func (k keys) request(ref lifecycle.Ref) string {
	return k.prefix + ":{" + k.tag(ref) + "}:req:" + ref.ID
}

// batchOf is the batch hash in the request's slot. For a batchless request
// it names a key that is never written, so scripts see "no batch".
func (k keys) batchOf(ref lifecycle.Ref) string {
	return k.prefix + ":{" + k.tag(ref) + "}:batch"
}

// leasesOf is the lease index (ZSET request id → lease expiry ms) in the
// request's slot. Scripts write it only when the batch record exists.
func (k keys) leasesOf(ref lifecycle.Ref) string {
	return k.prefix + ":{" + k.tag(ref) + "}:leases"
}

// requestKeys are the KEYS of every request script, in order.
func (k keys) requestKeys(ref lifecycle.Ref) []string {
	return []string{k.request(ref), k.batchOf(ref), k.leasesOf(ref)}
}

// pairKeys are requestKeys plus, fourth, the hash of the request's racing
// partner (escalation: the original of a copy id, else the copy of an
// original), or the request's own hash when it can have none. Scripts read
// the fourth key only when the record names the partner.
func (k keys) pairKeys(ref lifecycle.Ref) ([]string, string) {
	ks := k.requestKeys(ref)
	partner := lifecycle.PartnerID(ref.ID)
	if partner == "" || ref.BatchID == "" {
		return append(ks, ks[0]), ""
	}
	return append(ks, k.request(lifecycle.Ref{ID: partner, BatchID: ref.BatchID})), partner
}

// batch is the batch hash of a batch id.
func (k keys) batch(id string) string {
	return k.batchOf(lifecycle.Ref{BatchID: id})
}

// leases is the lease index of a batch id.
func (k keys) leases(id string) string {
	return k.leasesOf(lifecycle.Ref{BatchID: id})
}

// modelSlots is the ZSET of holders of a model's global concurrency slots
// (holder → expiry ms). Its tag is the model, so each model is one slot.
func (k keys) modelSlots(model string) string {
	return k.prefix + ":{slots:" + model + "}:holders"
}

// budget is the hash of one key × model's rate-limit budgets (id is
// ratelimit.Key's "<budget>|<model>", the budget a name or a key hash,
// never a key). Its tag is the id, so each budget is one slot.
func (k keys) budget(id string) string {
	return k.prefix + ":{rl:" + id + "}"
}

// batchesCreated indexes every batch by creation time (ZSET id → created_at
// ms) for the batch list. Not in any batch's slot.
func (k keys) batchesCreated() string { return k.prefix + ":batches:created" }

// batchesLive indexes the batches the sweep still watches (ZSET id →
// expires_at ms): until they are final and their events are out.
func (k keys) batchesLive() string { return k.prefix + ":batches:live" }

// sweepLock is the lock of the sweep's leader.
func (k keys) sweepLock() string { return k.prefix + ":sweep:lock" }
