// SPDX-License-Identifier: MIT

// Package floor is the floor the store's speed is measured against: the
// least work a store of its shape can do, with nothing a real store needs
// besides. Its Table is an open-addressing table of pointer-free slots
// (a hash and where the record lies) over one []byte arena holding each
// session's token and data side by side, as the store's index and chunks
// do. Find hashes the token, loads one slot, reads one record, compares
// the token and returns the data: no clock read, no deadline, no version
// re-check. Commit hashes, locks, probes, compares, copies the record to
// the arena's tail and stores the slot: no clock read, no compaction, no
// cap, no deletes.
//
// It is not a store: sessions never expire, and the arena fills up, after
// which Commit refuses until Compact has run. The benchmarks (the root's
// BenchmarkFloor and the integration module's BenchmarkInterleaved) time
// Find and Commit and leave Compact outside the timing, so that the figures
// are a floor no real store can go below, not a rival store.
//
// It is internal so that both of those can use it and no one else does.
package floor

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Table is the ideal table. Find may run beside Find and Commit; Compact
// must run alone.
type Table struct {
	seed  maphash.Seed
	slots []slot // a power of two of them, at most three quarters used
	mask  uint64

	mu    sync.Mutex // held by Commit and Compact
	arena []byte     // records: a length byte, the token, the data
	tail  int        // where the next record goes; guarded by mu
	used  int        // slots taken; guarded by mu
}

// slot is one session: meta is 0 for an empty slot, or the top 32 bits of
// the token's hash with the lowest bit set; at is the record's offset in the
// arena shifted left 24 bits, ORed with the data's length.
type slot struct {
	meta atomic.Uint64
	at   atomic.Uint64
}

// maxData is the longest data a record can hold: its length takes 24 bits.
const maxData = 1<<24 - 1

// New returns an empty Table for up to sessions sessions, each of up to
// recordBytes bytes of token and data, with an arena that holds spare
// records more, which Commit fills before Compact must run.
func New(sessions, recordBytes, spare int) *Table {
	n := 8
	for 3*n < 4*(sessions+1) {
		n *= 2
	}
	return &Table{
		seed:  maphash.MakeSeed(),
		slots: make([]slot, n),
		mask:  uint64(n - 1),
		arena: make([]byte, (sessions+spare)*(recordBytes+1)),
	}
}

// hash returns the token's hash and the meta its slot holds.
func (t *Table) hash(token string) (h, meta uint64) {
	h = maphash.String(t.seed, token)
	return h, h>>32 | 1
}

// Find returns the data held for token, the arena's own bytes (cap ==
// len), and whether it is held.
func (t *Table) Find(token string) ([]byte, bool) {
	h, meta := t.hash(token)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		m := s.meta.Load()
		if m == 0 {
			return nil, false
		}
		if m != meta {
			continue
		}
		at := s.at.Load()
		off := int(at >> 24)
		if int(t.arena[off]) == len(token) && string(t.arena[off+1:off+1+len(token)]) == token {
			d := off + 1 + len(token)
			end := d + int(at&maxData)
			return t.arena[d:end:end], true
		}
	}
}

// Commit copies token and data into the arena and points token's slot at
// them. It returns false, and changes nothing, when the arena has no room
// for the record (Compact makes some) or the table no free slot; it panics
// for a token longer than 255 bytes or data longer than 16 MiB.
func (t *Table) Commit(token string, data []byte) bool {
	if len(token) > 255 || len(data) > maxData {
		panic("floor: token or data too long")
	}
	h, meta := t.hash(token)
	t.mu.Lock()
	defer t.mu.Unlock()
	size := 1 + len(token) + len(data)
	if t.tail+size > len(t.arena) {
		return false
	}
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		m := s.meta.Load()
		if m == 0 {
			if 4*(t.used+1) > 3*len(t.slots) {
				return false
			}
			t.used++
			s.at.Store(t.append(token, data))
			s.meta.Store(meta)
			return true
		}
		if m != meta {
			continue
		}
		off := int(s.at.Load() >> 24)
		if int(t.arena[off]) == len(token) && string(t.arena[off+1:off+1+len(token)]) == token {
			s.at.Store(t.append(token, data))
			return true
		}
	}
}

// append copies a record to the tail and returns the slot's at for it.
// t.mu must be held, and the arena have room.
func (t *Table) append(token string, data []byte) uint64 {
	off := t.tail
	t.arena[off] = byte(len(token))
	copy(t.arena[off+1:], token)
	copy(t.arena[off+1+len(token):], data)
	t.tail = off + 1 + len(token) + len(data)
	return uint64(off)<<24 | uint64(len(data))
}

// Free returns how many bytes of records Commit can still copy before
// Compact must run.
func (t *Table) Free() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.arena) - t.tail
}

// Compact copies the records the slots point to into a new arena, in slot
// order, dropping those overwritten. No Find may run meanwhile, nor use a
// slice Find returned afterwards.
func (t *Table) Compact() {
	t.mu.Lock()
	defer t.mu.Unlock()
	arena, tail := make([]byte, len(t.arena)), 0
	for i := range t.slots {
		s := &t.slots[i]
		if s.meta.Load() == 0 {
			continue
		}
		at := s.at.Load()
		off := int(at >> 24)
		size := 1 + int(t.arena[off]) + int(at&maxData)
		copy(arena[tail:], t.arena[off:off+size])
		s.at.Store(uint64(tail)<<24 | at&maxData)
		tail += size
	}
	t.arena, t.tail = arena, tail
}
