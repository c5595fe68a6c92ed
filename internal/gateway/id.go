package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// orderedHex is 24 hex characters that sort in creation order: the
// creation time in milliseconds (6 bytes), then 6 random bytes. Lists are
// newest first, and created_at has whole seconds only, so within a second
// the ids give the order.
func orderedHex() string {
	var b [12]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(time.Now().UnixMilli()))
	copy(b[:6], ms[2:])
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}
