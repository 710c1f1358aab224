// SPDX-License-Identifier: MIT

package memstore

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"time"
)

// The tokens remembered as deleted. A request that loaded a session before
// a logout's Delete, and commits it after (scs does, for every request, once
// IdleTimeout is set), would bring the session back under the old token. So
// Delete remembers the token until the deadline the deleted session had, and
// Commit refuses it until then with ErrDeleted.
//
// The set is an open-addressing table with linear probing, like the index,
// of 16-byte slots holding no pointer: a 64-bit fingerprint of the token,
// keyed with a seed of the set's own, and the deadline. Only writers use it,
// under MemStore.mu: Delete adds, Commit looks up, the janitor and rebuilds
// remove what has expired. Find never needs it, since a deleted token's
// session is gone from the index. A fingerprint is recognised, not the
// token: a fresh random token is refused only if its fingerprint is one of
// the n remembered, with a probability of n/2^64 (about 5e-14 for a million
// tokens remembered). Removal shifts the slots after it back towards their
// homes, so the table holds no tombstone.

// deletedSet is the set of tokens remembered as deleted. Guarded by
// MemStore.mu; the zero value, with a seed, is an empty set that costs
// nothing.
type deletedSet struct {
	seed     maphash.Seed  // fingerprints tokens; random per store, so that no one can aim a collision
	slots    []deletedSlot // a power of two long, at most three quarters full; nil when empty
	shift    uint          // 64 - log2(len(slots)): a fingerprint's top bits name its home
	n        int           // tokens remembered, expired ones not yet removed included
	maxSlots int           // the most slots the cap lets the set take (see deletedShare); 0 for no limit
	reusable bool          // WithReusableDeletedTokens: nothing is remembered
	paused   bool          // Open is replaying logs, whose deletes and re-commits the store allowed when it made them
	dropped  uint64        // tokens forgotten before their deadline, to keep the set within its share of the cap
	refused  uint64        // Commits refused with ErrDeleted
}

// deletedSlot is one slot of the set. A zero fingerprint marks an empty
// slot: no token's fingerprint is zero (see fingerprint).
type deletedSlot struct {
	fp       uint64
	deadline time.Duration // on the store's clock, as in the index
}

// deletedSlotBytes is the size of a slot.
const deletedSlotBytes = 16

// minDeletedSlots is the smallest table the set builds.
const minDeletedSlots = 8

// deletedShare is the share of a cap set by WithMaxBytes that the set may
// take: past it, the tokens nearest their deadlines are forgotten first
// (see thin), so that a flood of deletes cannot evict live sessions beyond
// it.
const deletedShare = 16

// errDeleted is the error of a refused Commit: the same value every time,
// so that a refusal allocates nothing.
var errDeleted = fmt.Errorf("%w: its token was deleted before the session's expiry, and a request that loaded "+
	"the session before the Delete must not bring it back; answer as to a request without a session "+
	"(WithReusableDeletedTokens lets a program commit deleted tokens again)", ErrDeleted)

// initDeleted sets up the set once the options are applied.
func (m *MemStore) initDeleted() {
	m.deleted.seed = maphash.MakeSeed()
	if m.maxBytes > 0 {
		share := m.maxBytes / deletedShare / deletedSlotBytes
		if share > 0 {
			m.deleted.maxSlots = 1 << (bits.Len64(uint64(share)) - 1)
		}
		if m.deleted.maxSlots < minDeletedSlots {
			m.deleted.maxSlots = -1 // a cap under 2 KiB holds a session or two: nothing is remembered
		}
	}
}

// fingerprint returns the fingerprint of token: never zero, the mark of an
// empty slot.
func (s *deletedSet) fingerprint(token string) uint64 {
	return max(maphash.String(s.seed, token), 1)
}

// bytes returns what the set's table takes: it counts in Stats.Bytes and
// against the cap.
func (s *deletedSet) bytes() int64 { return int64(len(s.slots)) * deletedSlotBytes }

// home returns the slot where the probe for fp starts.
func (s *deletedSet) home(fp uint64) int { return int(fp >> s.shift) }

// find returns the slot holding fp, or the empty slot where its probe ended.
// The set must hold a table.
func (s *deletedSet) find(fp uint64) (i int, found bool) {
	mask := len(s.slots) - 1
	for i = s.home(fp); ; i = (i + 1) & mask {
		switch s.slots[i].fp {
		case fp:
			return i, true
		case 0:
			return i, false
		}
	}
}

// rememberDeletedLocked remembers token, whose session, ending at deadline,
// Delete has just removed, until that deadline. m.mu must be held for
// writing.
func (m *MemStore) rememberDeletedLocked(token string, deadline time.Duration) {
	s := &m.deleted
	if s.reusable || s.paused {
		return
	}
	now := m.now()
	if deadline <= now {
		return // nothing to bring back
	}
	if s.maxSlots < 0 {
		s.dropped++
		return
	}
	fp := s.fingerprint(token)
	if s.n > 0 {
		if i, found := s.find(fp); found {
			s.slots[i].deadline = max(s.slots[i].deadline, deadline)
			return
		}
	}
	before := s.bytes()
	if 4*(s.n+1) > 3*len(s.slots) {
		s.resize(now)
	}
	i, _ := s.find(fp)
	s.slots[i] = deletedSlot{fp: fp, deadline: deadline}
	s.n++
	if m.maxBytes > 0 && s.bytes() > before {
		m.makeRoomLocked(reservation{}, false) // the table grew: live sessions may have to make room for it
	}
}

// refusedLocked reports whether a Commit of token must be refused: the
// token is remembered as deleted, and its deadline has not passed. It
// removes the token if its deadline has passed. m.mu must be held for
// writing.
func (m *MemStore) refusedLocked(token string) bool {
	s := &m.deleted
	if s.n == 0 {
		return false
	}
	i, found := s.find(s.fingerprint(token))
	switch {
	case !found:
		return false
	case s.slots[i].deadline > m.now():
		return true
	}
	s.removeAt(i)
	return false
}

// removeAt empties slot i and shifts the slots of its cluster after it back
// towards their homes, so that every probe still ends at its token.
func (s *deletedSet) removeAt(i int) {
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j].fp != 0; j = (j + 1) & mask {
		// The slot at j may move to i if its home is not in (i, j],
		// cyclically: its probe passes i.
		if home := s.home(s.slots[j].fp); (j-home)&mask >= (j-i)&mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = deletedSlot{}
	s.n--
}

// resize builds the table again, without the tokens expired by now, sized
// for those left and one more. If the cap's share of the set cannot hold
// them, it forgets the tokens nearest their deadlines first (see thin).
func (s *deletedSet) resize(now time.Duration) {
	keepAfter := now
	kept := s.count(keepAfter)
	live := kept
	if s.maxSlots > 0 && deletedSizeFor(kept+1) > s.maxSlots {
		keepAfter = s.thin(now)
		if kept = s.count(keepAfter); deletedSizeFor(kept+1) > s.maxSlots {
			keepAfter, kept = maxDuration, 0 // a sample far off the median: start again
		}
	}
	s.dropped += uint64(live - kept)
	old := s.slots
	s.build(deletedSizeFor(kept + 1))
	for _, sl := range old {
		if sl.fp != 0 && sl.deadline > keepAfter {
			i, _ := s.find(sl.fp)
			s.slots[i] = sl
			s.n++
		}
	}
}

// count returns how many tokens of the set have a deadline after d.
func (s *deletedSet) count(d time.Duration) int {
	n := 0
	for _, sl := range s.slots {
		if sl.fp != 0 && sl.deadline > d {
			n++
		}
	}
	return n
}

// thin returns a deadline at or before which the set's unexpired tokens
// are to be forgotten, so that about half of them stay: the median of a
// sample of their deadlines. Sessions of one lifetime reach their deadlines
// in the order they were last used, and a remembered token is needed only
// while requests that loaded its session before the Delete may still be
// running, seconds after it: so the tokens deleted longest ago go first,
// and live sessions are evicted for the set only within its share of the
// cap.
func (s *deletedSet) thin(now time.Duration) time.Duration {
	const samples = 63
	sample := make([]time.Duration, 0, samples)
	stride := max(len(s.slots)/samples, 1)
	for i := 0; i < len(s.slots) && len(sample) < samples; i += stride {
		for j := i; j < min(i+stride, len(s.slots)); j++ { // the first unexpired token of each stretch
			if sl := s.slots[j]; sl.fp != 0 && sl.deadline > now {
				sample = append(sample, sl.deadline)
				break
			}
		}
	}
	if len(sample) == 0 {
		return now
	}
	slices.Sort(sample)
	return sample[len(sample)/2]
}

// maxDuration is the latest deadline.
const maxDuration = time.Duration(1<<63 - 1)

// deletedSizeFor returns the slots of a table for n tokens: at most half
// full, as the index.
func deletedSizeFor(n int) int {
	return max(minDeletedSlots, 1<<bits.Len(uint(2*n-1)))
}

// build replaces the table with an empty one of n slots, or none for 0.
func (s *deletedSet) build(n int) {
	s.n = 0
	if n == 0 {
		s.slots, s.shift = nil, 0
		return
	}
	s.slots = make([]deletedSlot, n)
	s.shift = uint(64 - bits.TrailingZeros(uint(n)))
}

// rebuild moves the set into a table of n slots.
func (s *deletedSet) rebuild(n int) {
	old := s.slots
	s.build(n)
	for _, sl := range old {
		if sl.fp != 0 {
			i, _ := s.find(sl.fp)
			s.slots[i] = sl
			s.n++
		}
	}
}

// sweepDeletedLocked removes the tokens expired by now whose fingerprints
// lie in [from, from+batchSize slots' worth), and returns where the next
// batch begins, or done once the whole set has been swept. The range is
// one of fingerprints, not slots, so that a sweep goes on across rebuilds
// between batches; a token added or moved meanwhile may wait for the next
// sweep. After the last batch, a set left sparse is rebuilt smaller. m.mu
// must be held for writing.
func (m *MemStore) sweepDeletedLocked(from uint64, now time.Duration) (next uint64, done bool) {
	s := &m.deleted
	if s.n == 0 {
		s.build(0)
		return 0, true
	}
	span := uint64(batchSize) << s.shift
	to := from + span
	last := to < from || span == 0 // wrapped past the largest fingerprint
	mask := len(s.slots) - 1
	first := s.home(from)
	for k := 0; k < len(s.slots); k++ {
		i := (first + k) & mask
		sl := s.slots[i]
		if sl.fp == 0 {
			if k >= batchSize {
				break // past the batch's homes and their clusters
			}
			continue
		}
		if sl.fp >= from && (last || sl.fp < to) && sl.deadline <= now {
			s.removeAt(i)
			k-- // slot i now holds what came after it
		}
	}
	if !last {
		return to, false
	}
	if s.n == 0 {
		s.build(0)
	} else if len(s.slots) > minDeletedSlots && 8*s.n < len(s.slots) {
		s.rebuild(deletedSizeFor(s.n))
	}
	return 0, true
}

// dropDeletedLocked forgets every remembered token, if any, and reports
// whether it did: the last resort of making room under a cap, when no
// session is left to evict. m.mu must be held for writing.
func (m *MemStore) dropDeletedLocked() bool {
	s := &m.deleted
	if s.slots == nil {
		return false
	}
	s.dropped += uint64(s.n)
	s.build(0)
	return true
}
