// SPDX-License-Identifier: MIT

package memstore

import (
	"slices"
	"sort"
	"time"
)

// heldLocked returns the bytes the store holds: see WithMaxBytes. m.mu must
// be held.
func (m *MemStore) heldLocked() int64 {
	return m.chunkBytes + m.dirBytes() + m.chargeLocked() + m.deleted.bytes()
}

// evictionSamples is how many sessions one look at the index samples: Redis's
// maxmemory-samples default.
const evictionSamples = 5

// makeRoomLocked removes dead bytes, or failing that sessions, until the
// record of r, written but not yet placed, and, if inserting, its index
// entry fit under the cap, or no session is left that may go: the kept one
// (see keptToken) goes only once expired. m.mu must be held for writing.
//
// The bytes that count here are those written: the active chunk's unwritten
// tail is left out, and room for a whole chunk is kept below the cap instead,
// so that starting a new chunk asks for no more room than the record that
// starts it.
//
// A chunk at least half dead is compacted first: the copy is no larger than
// what it frees. Otherwise a round samples a few sessions from a random slot
// of the index and removes the expired ones it meets, at no cost to anyone;
// failing that, it evicts the live session nearest its expiry among all
// those sampled so far, as Redis's volatile-ttl policy does. Removals free
// bytes only once their chunk is compacted, and sessions evicted nearest
// their expiry were mostly written together, so a few rounds usually leave a
// chunk half dead. After chunkRounds rounds, a removal compacts its
// session's chunk at once, removing with it every session there that expires
// no later: written together, they expire together. An expired session's
// chunk is preferred: chunkRounds more rounds look for one before a live
// session's chunk goes. Making room thus costs a few slots' reads a round
// and, now and then, a chunk's copy, whatever the store's size.
func (m *MemStore) makeRoomLocked(r reservation, inserting bool) {
	if m.maxBytes == 0 {
		return
	}
	limit := m.maxBytes - int64(m.chunkSize)
	now := m.now()
	for round := 0; m.writtenLocked()+m.growth(r, inserting) > limit; round++ {
		if !m.evictableLocked() {
			if m.dropDeletedLocked() {
				continue
			}
			return
		}
		withChunk := round >= chunkRounds
		switch {
		case m.compactHalfDeadLocked(now):
		case m.sampleExpiredLocked(now, withChunk):
		case round < chunkRounds || round >= 2*chunkRounds:
			m.evictBestLocked(now, withChunk)
		}
	}
}

// chunkRounds is how many rounds of making room remove one session at a
// time before a removal takes its chunk's other sessions that expire no
// later; then as many again look for an expired session's chunk before a
// live session's chunk goes.
const chunkRounds = 16

// compactHalfDeadLocked compacts a chunk at least half dead, removing the
// expired sessions in it, if one can be compacted now, and reports whether
// it did. m.mu must be held for writing.
func (m *MemStore) compactHalfDeadLocked(now time.Duration) bool {
	c := m.listedCompactableLocked()
	if c != nil {
		m.compactLocked(c, now)
	}
	return c != nil
}

// evictableLocked reports whether the store holds a session that making
// room may remove: any but the kept one, which goes only once expired, and
// then as any expired session does. m.mu must be held.
func (m *MemStore) evictableLocked() bool {
	switch n := m.lenLocked(); {
	case n == 0:
		return false
	case n > 1 || !m.kept.set:
		return true
	}
	_, held := m.lookupLocked(m.kept.hash, m.kept.token)
	return !held
}

// growth returns how much placing r will add to what writtenLocked counts:
// the table's growth if inserting into a full table, and the record itself
// unless its chunk is registered, and so counted, already (a compaction
// while making room may register it). The zero reservation adds nothing:
// making room for it only brings the store back under the cap. m.mu must be
// held.
func (m *MemStore) growth(r reservation, inserting bool) int64 {
	var g int64
	if inserting {
		g = m.growthLocked()
	}
	switch {
	case r.c == nil || r.c.id != 0:
	case r.alone():
		g += m.chunkCost(r.c)
	default: // a new shared chunk: its unwritten tail is in the room kept below the cap
		g += int64(len(r.buf)) + chunkHeader
	}
	return g
}

// writtenLocked returns the bytes the store holds (see heldLocked) less the
// unwritten tail of the active chunk. m.mu must be held.
func (m *MemStore) writtenLocked() int64 {
	held := m.heldLocked()
	if c := m.activeChunk(); c != nil && c.id != 0 {
		held -= int64(len(c.buf)) - c.used.Load()
	}
	return held
}

// sampleExpiredLocked looks at evictionSamples sessions, removes those that have
// expired, offers the others to the pool, and reports whether it removed any.
// With withChunk, the first expired session it meets goes with its chunk's
// other expired sessions, by compacting the chunk, and the sample ends there.
// m.mu must be held for writing.
func (m *MemStore) sampleExpiredLocked(now time.Duration, withChunk bool) (removed bool) {
	seen := 0
	var expired []candidate // removed once the sample ends: a removal may rebuild the table
	m.sampleLocked(func(h uint64, s slot) bool {
		seen++
		if s.deadline > now {
			m.pool.offer(candidate{hash: h, slot: s})
		} else {
			expired = append(expired, candidate{hash: h, slot: s})
		}
		return seen < evictionSamples
	})
	for _, c := range expired {
		if ch := m.chunkAt(c.slot.at.chunk); withChunk && m.compactable(ch, m.activeChunk()) {
			m.compactLocked(ch, now)
			return true
		}
		if _, ok := m.removeAtLocked(c.hash, c.slot.at); ok {
			m.counters.expired++
		}
	}
	return len(expired) > 0
}

// evictBestLocked evicts the pool's best candidate that the store still
// holds as the pool saw it, if there is one. With withChunk, and a chunk that
// can be compacted, it compacts the victim's chunk, evicting every session
// there that expires no later (see makeRoomLocked). m.mu must be held for
// writing.
func (m *MemStore) evictBestLocked(now time.Duration, withChunk bool) {
	for {
		c, ok := m.pool.takeBest()
		if !ok {
			return
		}
		i, held := m.slotAtLocked(c.hash, c.slot.at)
		if !held || m.slotLocked(i) != c.slot || m.keeps(c.hash, c.slot.at) {
			continue // removed, moved or renewed since it was sampled, or being replaced
		}
		if ch := m.chunkAt(c.slot.at.chunk); withChunk && m.compactable(ch, m.activeChunk()) {
			m.compactLocked(ch, c.slot.deadline)
		} else {
			m.removeLocked(i)
			m.countRemovalLocked(c.slot, now)
		}
		return
	}
}

// countRemovalLocked counts the removal of the session in s, as expired or
// evicted. m.mu must be held for writing.
func (m *MemStore) countRemovalLocked(s slot, now time.Duration) {
	if s.deadline <= now {
		m.counters.expired++
	} else {
		m.counters.evicted++
	}
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
