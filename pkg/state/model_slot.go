package state

import (
	"context"
	"fmt"
	"time"
)

// AcquireModelSlot takes one of limit global concurrency slots of model for
// holder (or keeps the one it has), valid for ttl. It reports false when all
// slots are taken. Expired holders are dropped first, so a crashed pod's
// slots come back after ttl. Expiry is measured only with Config.Clock: the
// key's Redis TTL is relative, so a server clock that differs from the
// pod's cannot make the slots vanish. ErrInvalidSlotArgs when limit < 1 or
// ttl < 1ms.
func (s *Store) AcquireModelSlot(ctx context.Context, model, holder string, limit int, ttl time.Duration) (bool, error) {
	if limit < 1 {
		return false, fmt.Errorf("state: acquire slot %s: limit %d must be at least 1: %w", model, limit, ErrInvalidSlotArgs)
	}
	if err := checkSlotTTL("acquire slot", model, ttl); err != nil {
		return false, err
	}
	n, err := scriptSlotAcquire.Run(ctx, s.client, []string{s.keys.modelSlots(model)},
		s.nowMS(), holder, limit, ttl.Milliseconds()).Int64()
	if err != nil {
		return false, opErr("acquire slot", model, err)
	}
	return n == 1, nil
}

// ReleaseModelSlot gives holder's slot of model back.
func (s *Store) ReleaseModelSlot(ctx context.Context, model, holder string) error {
	if err := s.client.ZRem(ctx, s.keys.modelSlots(model), holder).Err(); err != nil {
		return opErr("release slot", model, err)
	}
	return nil
}

// RefreshModelSlots extends the slots the holders still have by ttl.
// Holders whose slot already expired are not re-added: they acquire again.
// ErrInvalidSlotArgs when ttl < 1ms.
func (s *Store) RefreshModelSlots(ctx context.Context, model string, holders []string, ttl time.Duration) error {
	if err := checkSlotTTL("refresh slots", model, ttl); err != nil {
		return err
	}
	if len(holders) == 0 {
		return nil
	}
	args := make([]any, 0, len(holders)+2)
	args = append(args, s.nowMS(), ttl.Milliseconds())
	for _, h := range holders {
		args = append(args, h)
	}
	if err := scriptSlotRefresh.Run(ctx, s.client, []string{s.keys.modelSlots(model)}, args...).Err(); err != nil {
		return opErr("refresh slots", model, err)
	}
	return nil
}

// checkSlotTTL refuses a slot ttl below one millisecond (the scripts' unit).
func checkSlotTTL(op, model string, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("state: %s %s: ttl %s must be at least 1ms: %w", op, model, ttl, ErrInvalidSlotArgs)
	}
	return nil
}
