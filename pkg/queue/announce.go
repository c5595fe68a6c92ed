package queue

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A publisher announces each model it publishes, so that the workers start
// the model's fetch loop at once instead of waiting for the discovery
// leader's next listing (discovery.go). The announcement is a put of the
// key model.<token> in the DISCOVERY bucket, published asynchronously just
// before the request: one small message per model per process, repeated
// every Config.ModelIdleTimeout / 2 while the process keeps publishing the
// model — so a model whose loops stopped for idleness is restarted by the
// next announcement too. Repeats are harmless (a worker with a running loop
// ignores them). A lost or refused announcement (the bucket missing, a
// client not allowed to publish it) only costs time: the leader's listing
// finds the model within about one DiscoveryInterval.

// announcedMax bounds the models a process remembers announcing.
const announcedMax = 10_000

// announceDue reports whether model is to be announced now, and records
// the announcement when it is: at its first publish by this process and
// when the last announcement is older than Config.ModelIdleTimeout / 2.
// One map read per request on the publish path; concurrent publishers of
// the same model announce it once.
func (c *Client) announceDue(model string, now time.Time) bool {
	v, loaded := c.announced.Load(model)
	if !loaded {
		at := &atomic.Int64{}
		at.Store(now.UnixNano())
		if v, loaded = c.announced.LoadOrStore(model, at); !loaded {
			if c.announcedN.Add(1) > announcedMax {
				// Forgetting costs each model one announcement more.
				c.announced.Clear()
				c.announcedN.Store(0)
			}
			return true
		}
	}
	at := v.(*atomic.Int64)
	last := at.Load()
	if now.Sub(time.Unix(0, last)) < c.cfg.ModelIdleTimeout/2 {
		return false
	}
	return at.CompareAndSwap(last, now.UnixNano())
}

// announce publishes model's announcement without waiting for its ack; a
// goroutine, bounded by Config.PublishTimeout, logs a failure. Errors are
// never the caller's: the request publish goes ahead either way.
func (c *Client) announce(model string) {
	tok, err := lifecycle.EncodeToken(model)
	if err != nil {
		return // the request's own validation reports it
	}
	msg := nats.NewMsg(c.subj.announcement(tok))
	msg.Data = []byte(model)
	fut, err := c.js.PublishMsgAsync(msg)
	if err != nil {
		c.announced.Delete(model) // not sent: the next publish tries again
		c.log.Debug().Err(err).Str("model", model).Msg("model announcement not sent; the discovery leader finds the model")
		return
	}
	go func() {
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			c.log.Debug().Err(err).Str("model", model).Msg("model announcement failed; the discovery leader finds the model")
		}
	}()
}

// announceFor announces req's model when it is due.
func (c *Client) announceFor(req *lifecycle.Request) {
	if c.announceDue(req.Model, time.Now()) {
		c.announce(req.Model)
	}
}

// putModelKey announces the model token tok from the discovery leader,
// waiting for the bucket's ack.
func (co *Consumer) putModelKey(ctx context.Context, tok, model string) error {
	_, err := co.kv.Put(ctx, co.c.subj.modelKey(tok), []byte(model))
	return err
}
