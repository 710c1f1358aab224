// SPDX-License-Identifier: MIT

package memstore

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The index maps a token's hash to where its record lies and when it
// expires. It is an open-addressing table with linear probing, of fixed-size
// slots holding no pointer, so that the garbage collector never scans it
// however many sessions it holds.
//
// Writers (Commit, Delete, the sweep, compaction, eviction, restores) hold
// MemStore.mu for writing; Find holds nothing. Each slot carries a version
// that a writer makes odd before it changes the slot and even again after,
// as a seqlock does: Find loads the version, the slot's words and the chunk
// the slot names, loads the version again, and trusts what it read only if
// the version was even and did not move. A writer never moves a session to
// another slot of the same table: it changes a slot in place, or marks it a
// tombstone, so that a reader probing past a slot never misses a session
// that stayed put. Growing, shrinking and clearing tombstones build a new
// table and publish it atomically; the old one is never written again, and a
// reader that finds its table replaced starts over on the new one.
//
// A session's probe starts at its home: the slot that the top bits of its
// hash name. So the slots hold sessions in the order of their hashes, give
// or take a few probe steps, whatever the table's size, and a walk that
// releases the lock between batches goes on, after a rebuild, from the hash
// it had reached (see walk).

// Hash values with a meaning of their own. Every token's hash has bit 31
// set (see MemStore.hash), so neither is one.
const (
	emptyHash     = 0 // a slot never used since the table was built: probes stop here
	tombstoneHash = 1 // a slot whose session was removed: probes go on past it
)

// keyBits is how many bits of a token's hash tell sessions apart: bit 31,
// always set, only tells them from emptyHash and tombstoneHash.
const keyBits = 31

// keyOf returns the bits of h that tell sessions apart, in [0, 1<<keyBits).
func keyOf(h uint64) uint64 { return h & (1<<keyBits - 1) }

// slotBytes is the size of a slot: three 8-byte words.
const slotBytes = 24

// minSlots is the smallest table that holds sessions: an empty store holds
// no table at all.
const minSlots = 8

// tableSlot is one slot. Writers store its words atomically, since Find
// loads them without a lock; writers themselves read them plainly, for every
// store happens under MemStore.mu. (Atomic loads cost nothing more on most
// machines, but under the race detector each costs a synchronization, which
// made the test suite several times slower.) The words are 8-byte aligned,
// as 64-bit atomics need on 32-bit machines: slots are 24 bytes, and a
// slice's first element is aligned.
type tableSlot struct {
	meta     uint64 // the version, odd while a writer changes the slot, in the high half; the hash in the low
	at       uint64 // the record's location, packed: see location.pack
	deadline int64  // on the store's monotonic clock (time since epoch)
}

// table is one generation of the index. Its slots are read without a lock;
// used and live are guarded by MemStore.mu.
type table struct {
	slots []tableSlot // a power of two long, or empty
	mask  uint64      // len(slots)-1
	shift uint        // keyBits - log2(len(slots)): see home
	used  int         // slots not empty: live sessions and tombstones
	live  int         // sessions held
}

// emptyTable is the table of a store holding no session: it costs nothing.
var emptyTable = &table{}

// newTable returns an empty table of n slots, a power of two.
func newTable(n int) *table {
	return &table{slots: make([]tableSlot, n), mask: uint64(n - 1), shift: keyBits + 1 - uint(bits.Len(uint(n)))}
}

// home returns the slot where the probe for hash h starts: the top bits of
// its key.
func (t *table) home(h uint64) uint64 { return keyOf(h) >> t.shift }

// sizeFor returns the number of slots of a table built for live sessions:
// at most half full, so that it takes half as many again before it grows.
func sizeFor(live int) int {
	if live == 0 {
		return 0
	}
	return max(minSlots, 1<<bits.Len(uint(2*live-1)))
}

// charge returns the bytes a table of n slots holding live sessions counts
// for in Stats.Bytes and against the cap: its size, and, once more than half
// its slots hold sessions, as much again in proportion, up to the whole
// size of the table it grows into at three quarters. So each session added
// past half pays its share of the growth to come, and under a cap the
// growth needs no more room than any other insertion: without it, making
// room for a table twice the size would evict a quarter of the sessions at
// once. Tombstones count for nothing here: a table full of them is rebuilt
// at its size.
func charge(n, live int) int64 {
	over := min(max(4*live-2*n, 0), n) // live past half, in quarters of n
	return int64(n+over) * slotBytes
}

// chargeLocked returns the bytes the current table counts for: see charge.
// m.mu must be held.
func (m *MemStore) chargeLocked() int64 {
	t := m.table.Load()
	return charge(len(t.slots), t.live)
}

// full reports whether one more slot taken would pass the load the table
// allows: three quarters, tombstones included, beyond which probes get long.
func (t *table) full() bool { return 4*(t.used+1) > 3*len(t.slots) }

// sparse reports whether the table holds so few sessions that it should
// shrink: under a quarter of its slots. Built again for them, it is at
// least a quarter full, so that a few sessions more or less do not grow it
// and shrink it by turns.
func (t *table) sparse() bool { return len(t.slots) > minSlots && 4*t.live < len(t.slots) }

// slot is what the index holds of one session, as writers read it.
type slot struct {
	at       location
	deadline time.Duration // on the store's monotonic clock (time since epoch)
}

// location is where a record lies.
type location struct {
	chunk  uint32 // the chunk's id: see chunkDir
	offset uint16 // the record's first byte in the chunk: shared chunks are at most 64 KiB
	size   uint16 // the record's size, or 0 for a record alone in its chunk: shared records are at most 4 KiB
}

func (l location) pack() uint64 {
	return uint64(l.chunk)<<32 | uint64(l.offset)<<16 | uint64(l.size)
}

func unpackLocation(w uint64) location {
	return location{chunk: uint32(w >> 32), offset: uint16(w >> 16), size: uint16(w)}
}

// hash returns the hash the slot holds, for a writer.
func (s *tableSlot) hash() uint64 { return s.meta & 0xffff_ffff }

// read returns the slot's session, for a writer: no other writer runs, so
// the words cannot move while they are read.
func (s *tableSlot) read() slot {
	return slot{at: unpackLocation(s.at), deadline: time.Duration(s.deadline)}
}

// write sets the slot's words, making the version odd meanwhile, so that a
// reader who saw any of them change also sees the version move. (It wraps
// after 2^31 writes to one slot, far more than a reader's few loads can
// span.) m.mu must be held for writing.
func (s *tableSlot) write(hash uint64, sl slot) {
	version := s.meta >> 32
	atomic.StoreUint64(&s.meta, (version+1)<<32|s.meta&0xffff_ffff)
	atomic.StoreUint64(&s.at, sl.at.pack())
	atomic.StoreInt64(&s.deadline, int64(sl.deadline))
	atomic.StoreUint64(&s.meta, (version+2)<<32|hash)
}

// lookup returns the data and deadline of the session of token, whose hash
// is h, reading without a lock, and whether it is held: Find's path, with
// nothing on it that a reader does not need. Slices it returns are the
// store's own bytes.
//
// A slot's words are trusted only if its version was even and did not move
// while they were read, and its table was still current once the chunk it
// names was loaded (see findIn). A slot whose hash is not h is passed by
// without a look at its version: a writer that is making it h is inserting
// a session that a reader may as well not see yet, and one that is changing
// a session for h keeps h in the slot meanwhile.
func (m *MemStore) lookup(h uint64, token string) (data []byte, deadline time.Duration, found bool) {
restart:
	t := m.table.Load()
	for i := t.home(h); len(t.slots) > 0; i = (i + 1) & t.mask {
		s := &t.slots[i]
	again:
		meta := atomic.LoadUint64(&s.meta)
		switch meta & 0xffff_ffff {
		case h:
		case emptyHash:
			return nil, 0, false
		default:
			continue
		}
		if meta&(1<<32) != 0 {
			runtime.Gosched() // a writer is in the middle of the slot: a few stores
			goto again
		}
		at := atomic.LoadUint64(&s.at)
		deadline = time.Duration(atomic.LoadInt64(&s.deadline))
		c := m.chunkAt(uint32(at >> 32))
		if atomic.LoadUint64(&s.meta) != meta {
			goto again
		}
		if m.table.Load() != t {
			goto restart
		}
		if data, ok := c.match(uint16(at>>16), token); ok {
			return data, deadline, true
		}
	}
	return nil, 0, false
}

// found is what findIn read of a session: the slot holding it (or -1 for
// none), that slot's version and hash as read, its data and its deadline.
type found struct {
	i        int
	meta     uint64
	data     []byte
	deadline time.Duration
}

// findIn looks token up in t, without a lock. valid is false if what it
// read may be inconsistent: t was replaced, and a chunk it names may since
// have been dropped and its id given to another.
//
// A miss needs no such check: t was current when the caller loaded it, and
// if it was replaced since, its slots kept the state they had then, a state
// the store was in during the call.
func (m *MemStore) findIn(t *table, h uint64, token string) (f found, valid bool) {
	if len(t.slots) == 0 {
		return found{i: -1}, true
	}
	for i := t.home(h); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
	again:
		meta := atomic.LoadUint64(&s.meta)
		if meta&(1<<32) != 0 {
			runtime.Gosched() // a writer is in the middle of the slot: a few stores
			goto again
		}
		switch meta & 0xffff_ffff {
		case emptyHash:
			return found{i: -1}, true
		case h:
		default:
			continue
		}
		at := unpackLocation(atomic.LoadUint64(&s.at))
		deadline := time.Duration(atomic.LoadInt64(&s.deadline))
		c := m.chunkAt(at.chunk)
		if atomic.LoadUint64(&s.meta) != meta {
			goto again
		}
		// The slot named c while it was current, if t still is: then c
		// held the record, a chunk is dropped only once no slot of the
		// current table names it, and a record is never modified.
		if m.table.Load() != t {
			return found{}, false
		}
		if data, ok := c.match(at.offset, token); ok {
			return found{i: int(i), meta: meta, data: data, deadline: deadline}, true
		}
	}
}

// slotHint is where a writer found a token's slot before taking the lock,
// so that under the lock it checks that the slot did not change rather than
// look the token up again.
type slotHint struct {
	t    *table // nil if the token was not found
	i    int
	meta uint64
}

// hint looks token, whose hash is h, up without a lock, for a writer that
// is about to take it.
func (m *MemStore) hint(h uint64, token string) slotHint {
	t := m.table.Load()
	f, valid := m.findIn(t, h, token)
	if !valid || f.i < 0 {
		return slotHint{}
	}
	return slotHint{t: t, i: f.i, meta: f.meta}
}

// hintLocked returns the hint for slot i of the current table, or for no
// slot if held is false, to be checked by lookupHintedLocked after the
// table may have changed. m.mu must be held.
func (m *MemStore) hintLocked(i int, held bool) slotHint {
	if !held {
		return slotHint{}
	}
	t := m.table.Load()
	return slotHint{t: t, i: i, meta: t.slots[i].meta}
}

// lookupHintedLocked is lookupLocked, taking the slot in hint if it still
// holds the token: the table is the same, and the slot's version and hash
// have not moved since the token was compared. m.mu must be held.
func (m *MemStore) lookupHintedLocked(h uint64, token string, hint slotHint) (i int, found bool) {
	if hint.t != nil && hint.t == m.table.Load() && hint.t.slots[hint.i].meta == hint.meta {
		return hint.i, true
	}
	return m.lookupLocked(h, token)
}

// lookupLocked returns the index of the slot holding token, whose hash is
// h, in the current table. m.mu must be held.
func (m *MemStore) lookupLocked(h uint64, token string) (i int, found bool) {
	return m.probeLocked(h, func(at uint64) bool { return m.tokenIs(unpackLocation(at), token) })
}

// slotAtLocked returns the index of the slot pointing at at, whose token
// hashes to h, in the current table: a session named by its record, as the
// sweep and eviction name those they met. m.mu must be held.
func (m *MemStore) slotAtLocked(h uint64, at location) (i int, found bool) {
	packed := at.pack()
	return m.probeLocked(h, func(at uint64) bool { return at == packed })
}

// probeLocked returns the index of the first slot of the current table on
// h's probe sequence that holds hash h and whose packed location is, by
// match, the one sought. m.mu must be held.
func (m *MemStore) probeLocked(h uint64, match func(at uint64) bool) (i int, found bool) {
	t := m.table.Load()
	if len(t.slots) == 0 {
		return 0, false
	}
	for i := t.home(h); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		switch s.hash() {
		case emptyHash:
			return 0, false
		case h:
			if match(s.at) {
				return int(i), true
			}
		}
	}
}

// slotLocked returns the session in slot i of the current table. m.mu must
// be held.
func (m *MemStore) slotLocked(i int) slot {
	return m.table.Load().slots[i].read()
}

// setLocked changes the session in slot i of the current table. m.mu must be
// held for writing.
func (m *MemStore) setLocked(i int, s slot) {
	sl := &m.table.Load().slots[i]
	sl.write(sl.hash(), s)
}

// insertLocked adds a session whose token, hashing to h, the store does not
// hold, growing the table first if it is full. m.mu must be held for
// writing.
func (m *MemStore) insertLocked(h uint64, s slot) {
	t := m.table.Load()
	if len(t.slots) == 0 || t.full() {
		t = m.rebuildLocked(t.live + 1)
	}
	for i := t.home(h); ; i = (i + 1) & t.mask {
		switch t.slots[i].hash() {
		case emptyHash:
			t.used++
			fallthrough
		case tombstoneHash:
			t.slots[i].write(h, s)
			t.live++
			return
		}
	}
}

// clearSlotLocked removes the session in slot i of the current table, leaving
// a tombstone, and shrinks the table if it is now mostly empty. m.mu must be
// held for writing.
func (m *MemStore) clearSlotLocked(i int) {
	t := m.table.Load()
	t.slots[i].write(tombstoneHash, slot{})
	t.live--
	if t.live == 0 || t.sparse() {
		m.rebuildLocked(t.live)
	}
}

// rebuildLocked replaces the current table with one sized for live
// sessions, holding the sessions of the current one and no tombstone, and
// returns it. Readers of the old table go on reading it, or start over on
// the new one (see findIn). m.mu must be held for writing.
//
// A rebuild takes time in proportion to the table, under the lock: it
// happens when the sessions have doubled, or fallen to an eighth, since the
// last, or tombstones fill a quarter of the table, so that its cost spread
// over the changes that called for it is a few slot copies each.
func (m *MemStore) rebuildLocked(live int) *table {
	old := m.table.Load()
	n := sizeFor(live)
	t := emptyTable
	if n > 0 {
		t = newTable(n)
		for i := range old.slots {
			s := &old.slots[i]
			h := s.hash()
			if h == emptyHash || h == tombstoneHash {
				continue
			}
			j := t.home(h)
			for t.slots[j].hash() != emptyHash {
				j = (j + 1) & t.mask
			}
			t.slots[j] = tableSlot{meta: h, at: s.at, deadline: s.deadline} // no reader sees t yet
		}
		t.used, t.live = old.live, old.live
	}
	m.table.Store(t)
	return t
}

// growthLocked returns how much what the table counts for (see charge) will
// grow when one more session is inserted, for making room under a cap. m.mu
// must be held.
func (m *MemStore) growthLocked() int64 {
	t := m.table.Load()
	n := len(t.slots)
	if n == 0 || t.full() {
		n = sizeFor(t.live + 1)
	}
	return max(0, charge(n, t.live+1)-charge(len(t.slots), t.live))
}

// walk calls visit for every session of the index, in batches: it holds
// lk while it visits the sessions whose homes lie in batchSize slots, then
// releases it, calls between, if not nil, and stops if it returns false. It
// returns the longest single hold. visit runs with lk held.
//
// Each batch covers the hash keys from where the last one ended, in the
// table current at that batch: since the table orders sessions by key
// whatever its size (see home), tables rebuilt between batches neither make
// the walk visit a token twice nor miss one. A session removed before the
// walk reaches it is not visited, one added during the walk may or may not
// be, and every other one is visited once, with its slot as of the visit.
func (m *MemStore) walk(lk sync.Locker, visit func(h uint64, s slot), between func() bool) (longestHold time.Duration) {
	for from := uint64(0); from < 1<<keyBits; {
		if from > 0 && between != nil && !between() {
			break
		}
		lk.Lock()
		heldSince := time.Now()
		from = m.visitKeysLocked(from, visit)
		longestHold = max(longestHold, time.Since(heldSince))
		lk.Unlock()
	}
	return longestHold
}

// visitKeysLocked calls visit for the sessions of the current table whose
// keys lie from from on, up to those of batchSize homes, and returns the key
// it stopped before. m.mu must be held.
func (m *MemStore) visitKeysLocked(from uint64, visit func(h uint64, s slot)) (to uint64) {
	t := m.table.Load()
	if len(t.slots) == 0 {
		return 1 << keyBits
	}
	to = min(from+batchSize<<t.shift, 1<<keyBits)
	first, last := from>>t.shift, (to-1)>>t.shift
	// A session whose home is in [first, last] lies between its home and
	// the next empty slot, wrapping past the end: the table is never full.
	// No slot is looked at twice, for wrapping back to first would.
	for i := first; i < first+uint64(len(t.slots)); i++ {
		s := &t.slots[i&t.mask]
		h := s.hash()
		if h == emptyHash && i > last {
			break
		}
		if k := keyOf(h); h != emptyHash && h != tombstoneHash && from <= k && k < to {
			visit(h, s.read())
		}
	}
	return to
}

// sampleLocked calls look for the sessions of the current table from a
// random slot on, until look returns false or it has seen every one. m.mu
// must be held.
func (m *MemStore) sampleLocked(look func(h uint64, s slot) bool) {
	t := m.table.Load()
	if len(t.slots) == 0 {
		return
	}
	start := m.rng.next() & t.mask
	for k := uint64(0); k <= t.mask; k++ {
		s := &t.slots[(start+k)&t.mask]
		if h := s.hash(); h != emptyHash && h != tombstoneHash && !look(h, s.read()) {
			return
		}
	}
}

// rng is a small pseudo-random generator, splitmix64, for choosing where
// eviction samples the index. Guarded by MemStore.mu.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
