package state

import (
	"context"
	"time"

	"github.com/salvo-run/salvo/pkg/ratelimit"
)

// AdmitBudget reserves a call's cost from a key × model's budgets
// (lua/budget_admit.lua): one script call, sent in a shared pipeline with
// the concurrent handlers' calls. Budgets never wait for replicas
// (lease.wait_replicas): a failover that loses a reservation costs a
// little over-spending, not a result.
func (s *Store) AdmitBudget(ctx context.Context, a ratelimit.AdmitArgs) (ratelimit.Admission, error) {
	args := make([]any, 0, 3+2*ratelimit.NumDims)
	args = append(args, a.Now.UnixMilli(), max(a.MaxWait.Milliseconds(), 0), max(a.TTL.Milliseconds(), 1))
	for _, v := range a.Limits {
		args = append(args, max(v, 0))
	}
	for _, v := range a.Cost {
		args = append(args, max(v, 0))
	}
	r, err := s.runSoft(ctx, scriptBudgetAdmit, []string{s.keys.budget(a.Key)}, args...)
	if err != nil {
		return ratelimit.Admission{}, opErr("admit budget", a.Key, err)
	}
	adm := ratelimit.Admission{OK: r.int(0) == 1, Wait: time.Duration(r.int(1)) * time.Millisecond}
	for d := range adm.Limits {
		adm.Limits[d] = r.int(2 + d)
	}
	return adm, nil
}

// SettleBudget corrects a reservation and records what a response's
// headers said (lua/budget_settle.lua).
func (s *Store) SettleBudget(ctx context.Context, a ratelimit.SettleArgs) error {
	hold := int64(0)
	if !a.HoldUntil.IsZero() {
		hold = a.HoldUntil.UnixMilli()
	}
	args := make([]any, 0, 3+4*ratelimit.NumDims)
	args = append(args, a.Now.UnixMilli(), hold, max(a.TTL.Milliseconds(), 1))
	for d := range ratelimit.NumDims {
		args = append(args, max(a.Limits[d], 0), a.Refund[d], a.Learned[d], a.Remaining[d])
	}
	if _, err := s.runSoft(ctx, scriptBudgetSettle, []string{s.keys.budget(a.Key)}, args...); err != nil {
		return opErr("settle budget", a.Key, err)
	}
	return nil
}
