package state

import (
	"context"
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// lib holds the Lua helpers every script below starts with.
//
//go:embed lua/lib.lua
var luaLib string

var (
	//go:embed lua/claim.lua
	luaClaim string
	//go:embed lua/finish.lua
	luaFinish string
	//go:embed lua/requeue.lua
	luaRequeue string
	//go:embed lua/refresh.lua
	luaRefresh string
	//go:embed lua/mark_published.lua
	luaMarkPublished string
	//go:embed lua/force_fail.lua
	luaForceFail string
	//go:embed lua/cancel_request.lua
	luaCancelRequest string
	//go:embed lua/supersede.lua
	luaSupersede string
	//go:embed lua/escalate.lua
	luaEscalate string
	//go:embed lua/cancel_batch.lua
	luaCancelBatch string
	//go:embed lua/create_batch.lua
	luaCreateBatch string
	//go:embed lua/seal_batch.lua
	luaSealBatch string
	//go:embed lua/expire_batch.lua
	luaExpireBatch string
	//go:embed lua/finish_batch.lua
	luaFinishBatch string
	//go:embed lua/end_stranded.lua
	luaEndStranded string
	//go:embed lua/batch_event.lua
	luaBatchEvent string
	//go:embed lua/lock.lua
	luaLock string
	//go:embed lua/slot_acquire.lua
	luaSlotAcquire string
	//go:embed lua/slot_refresh.lua
	luaSlotRefresh string
	//go:embed lua/budget_admit.lua
	luaBudgetAdmit string
	//go:embed lua/budget_settle.lua
	luaBudgetSettle string
)

// withLib prepends the shared helpers to a script body.
func withLib(body string) *redis.Script { return redis.NewScript(luaLib + "\n" + body) }

var (
	scriptClaim         = withLib(luaClaim)
	scriptFinish        = withLib(luaFinish)
	scriptRequeue       = withLib(luaRequeue)
	scriptRefresh       = withLib(luaRefresh)
	scriptMarkPublished = withLib(luaMarkPublished)
	scriptForceFail     = withLib(luaForceFail)
	scriptCancelRequest = withLib(luaCancelRequest)
	scriptSupersede     = withLib(luaSupersede)
	scriptEscalate      = withLib(luaEscalate)
	scriptCancelBatch   = withLib(luaCancelBatch)
	scriptCreateBatch   = withLib(luaCreateBatch)
	scriptSealBatch     = withLib(luaSealBatch)
	scriptExpireBatch   = withLib(luaExpireBatch)
	scriptFinishBatch   = withLib(luaFinishBatch)
	scriptEndStranded   = withLib(luaEndStranded)
	scriptBatchEvent    = withLib(luaBatchEvent)
	scriptLock          = redis.NewScript(luaLock)
	scriptSlotAcquire   = redis.NewScript(luaSlotAcquire)
	scriptSlotRefresh   = redis.NewScript(luaSlotRefresh)
	scriptBudgetAdmit   = redis.NewScript(luaBudgetAdmit)
	scriptBudgetSettle  = redis.NewScript(luaBudgetSettle)
)

// scriptCall is one script invocation of a pipelined batch.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// runPipelined runs calls in one pipeline with EVALSHA and returns one Cmd
// per call; callers read each Cmd's own error (a transport failure is set on
// every Cmd). Redis forgets scripts on restart: calls answered NOSCRIPT are
// loaded and sent once more. With wait on, each pipeline ends with WAIT
// (wait.go), and when the replicas did not confirm it every call it ran
// gets the wait's error: their writes may be lost in a failover.
func runPipelined(ctx context.Context, c redis.UniversalClient, wait replicaWait, calls []scriptCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	exec := func(idx []int) {
		pipe := c.Pipeline()
		for _, i := range idx {
			cmds[i] = calls[i].script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		waitCmd := wait.add(ctx, pipe)
		_, _ = pipe.Exec(ctx) // errors are read per Cmd
		if err := wait.check(waitCmd); err != nil {
			for _, i := range idx {
				// A call answered NOSCRIPT wrote nothing and goes again
				// (with a WAIT of its own); one with an error keeps it.
				if cmds[i].Err() == nil {
					cmds[i].SetErr(err)
				}
			}
		}
	}
	all := make([]int, len(calls))
	for i := range calls {
		all[i] = i
	}
	exec(all)
	var again []int
	loaded := map[*redis.Script]bool{}
	for i, cmd := range cmds {
		if !redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			continue
		}
		again = append(again, i)
		if s := calls[i].script; !loaded[s] {
			_ = s.Load(ctx, c).Err() // a failure shows again on the retried Cmd
			loaded[s] = true
		}
	}
	if len(again) > 0 {
		exec(again)
	}
	return cmds
}
