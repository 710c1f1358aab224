// SPDX-License-Identifier: MIT

package memstore

import (
	"errors"
	"slices"
	"sort"
	"time"
)

// ErrTooLarge is wrapped by the error Commit returns for a session larger
// than the whole cap set by WithMaxBytes, or than the most a store holds.
var ErrTooLarge = errors.New("memstore: session larger than the store's byte cap")

// WithMaxBytes caps the memory the store holds at n bytes: its chunks, with
// the bytes of live sessions, dead ones not yet reclaimed and room not yet
// written, and its index, at indexEntryBytes a session. Stats reports that
// figure as Bytes. An n of zero or less means no cap, the default.
//
// A Commit that would take the store past the cap first compacts chunks
// that are at least 2/16 dead, reclaiming what overwritten, deleted and
// expired sessions left behind; then removes expired sessions; then evicts
// the live sessions nearest their expiry, sampled as Redis's volatile-ttl
// policy does. One session larger than the whole cap is refused with
// ErrTooLarge.
//
// Making room costs a few sessions sampled and evicted and, once per chunk,
// a compaction: a copy of at most 64 KiB (or 1/64 of the cap, if less) and a
// map update per record moved, some tens of microseconds. Sessions evicted
// nearest their expiry were mostly written together, so their dead bytes
// gather in a few chunks. In the worst case, live sessions whose expiries
// bear no relation to when they were written, evictions are spread over every
// chunk, and the first Commit to reach the cap may evict up to 1/8 of the
// store before any chunk is worth compacting; every later one evicts a few.
func WithMaxBytes(n int64) Option {
	return func(m *MemStore) { m.maxBytes = max(n, 0) }
}

// indexEntryBytes is what a session costs in the index: its share of the
// map's groups, an 8-byte key, a 16-byte slot and a control byte, at the
// map's lowest load. Measured with Go 1.26 on amd64 as the heap growth after
// runtime.GC per session, for maps of 1,000 to 10,000,000 sessions: between
// 35 and 56 bytes, by how full the map's tables are.
const indexEntryBytes = 56

// heldLocked returns the bytes the store holds: see WithMaxBytes.
func (m *MemStore) heldLocked() int64 {
	return m.chunkBytes + int64(m.lenLocked())*indexEntryBytes
}

// evictionSamples is how many sessions one look at the index samples: Redis's
// maxmemory-samples default.
const evictionSamples = 5

// makeRoomLocked compacts chunks, or failing that removes sessions, until
// need more bytes fit under the cap, or the store is empty. m.mu must be held
// for writing.
//
// Each removal samples a few sessions from a random place in the index (Go
// starts every map iteration at a random place). Expired sessions it meets go
// first, at no cost to anyone; otherwise the live session nearest its expiry
// among all those sampled so far goes, as Redis's volatile-ttl policy does.
// The cost is a few map steps per session removed, whatever the store's size.
func (m *MemStore) makeRoomLocked(need int64) {
	if m.maxBytes == 0 {
		return
	}
	now := m.now()
	for m.heldLocked()+need > m.maxBytes && m.lenLocked() > 0 {
		if c := m.listedCompactableLocked(); c != nil {
			m.compactLocked(c)
		} else if !m.sampleLocked(now) {
			m.evictBestLocked(now)
		}
	}
}

// sampleLocked looks at evictionSamples sessions, removes those that have
// expired, offers the others to the pool, and reports whether it removed any.
func (m *MemStore) sampleLocked(now time.Duration) (removed bool) {
	seen := 0
	look := func(h uint64, s slot) bool {
		if s.deadline <= now {
			m.expireLocked(h, s)
			removed = true
		} else {
			m.pool.offer(candidate{hash: h, slot: s})
		}
		seen++
		return seen < evictionSamples
	}
	for h, s := range m.index {
		if !look(h, s) {
			return removed
		}
	}
	for token, s := range m.colliders {
		if !look(m.hash(token), s) {
			return removed
		}
	}
	return removed
}

// evictBestLocked removes the pool's best candidate that the store still
// holds as the pool saw it, if there is one.
func (m *MemStore) evictBestLocked(now time.Duration) {
	for {
		c, ok := m.pool.takeBest()
		if !ok {
			return
		}
		s, held := m.slotAtLocked(c.hash, c.slot.at)
		if !held || s != c.slot {
			continue // removed, moved or renewed since it was sampled
		}
		if s.deadline <= now {
			m.expireLocked(c.hash, s)
		} else {
			m.removeLocked(c.hash, s)
			m.counters.evicted++
		}
		return
	}
}

// expireLocked removes the session in s, whose token hashes to h, an expired
// one, and counts it. m.mu must be held for writing.
func (m *MemStore) expireLocked(h uint64, s slot) {
	m.removeLocked(h, s)
	m.counters.expired++
}

// poolSize is how many eviction candidates the pool keeps: Redis's
// EVPOOL_SIZE. Keeping the best of every sample between evictions makes each
// eviction choose among far more than evictionSamples sessions.
const poolSize = 16

// candidate is a session sampled for eviction, as it was when sampled. It
// names the session by where its record lies, not by its token, so that the
// pool keeps no deleted token alive.
type candidate struct {
	hash uint64 // of its token
	slot slot
}

// evictionPool holds the best candidates sampled so far, nearest expiry
// first. Its entries may be stale: evictBestLocked checks each against the
// index.
type evictionPool struct {
	best []candidate // sorted by deadline, at most poolSize long
}

// offer adds c unless the pool holds poolSize candidates at least as good.
// The pool may then hold a session twice: the copy left after the first is
// evicted is stale, and dropped like any other.
func (p *evictionPool) offer(c candidate) {
	if len(p.best) == poolSize && c.slot.deadline >= p.best[poolSize-1].slot.deadline {
		return // the common case once the pool is full: no better than any
	}
	i := sort.Search(len(p.best), func(j int) bool { return p.best[j].slot.deadline > c.slot.deadline })
	if p.best == nil {
		p.best = make([]candidate, 0, poolSize+1) // room to insert before dropping the worst
	}
	p.best = slices.Insert(p.best, i, c)
	if len(p.best) > poolSize {
		p.best = slices.Delete(p.best, poolSize, poolSize+1)
	}
}

// takeBest removes and returns the candidate nearest its expiry.
func (p *evictionPool) takeBest() (candidate, bool) {
	if len(p.best) == 0 {
		return candidate{}, false
	}
	c := p.best[0]
	p.best = slices.Delete(p.best, 0, 1)
	return c, true
}
