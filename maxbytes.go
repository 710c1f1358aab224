// SPDX-License-Identifier: MIT

package memstore

import (
	"errors"
	"slices"
	"sort"
	"time"
)

// ErrTooLarge is wrapped by the error Commit returns for a session larger
// than the whole cap set by WithMaxBytes.
var ErrTooLarge = errors.New("memstore: session larger than the store's byte cap")

// entryOverhead is what an entry costs beyond the bytes of its token and its
// data: its map slot (a 16-byte string header and a 32-byte entry, at the
// map's load factor), its share of the map's control bytes, and the rounding
// of the token and data allocations up to the runtime's size classes.
//
// Measured with Go 1.26 on amd64 as the heap growth after runtime.GC per
// entry, less the token and data lengths, for maps of 10,000 to 1,000,000
// entries with 43-byte tokens (scs's) and 0 to 200 bytes of data: between 80
// and 135 bytes, depending on how full the map's tables are. 128 errs on the
// side of counting too much, so that the cap bounds the real heap.
const entryOverhead = 128

// entrySize is what an entry counts against the cap.
func entrySize(token string, e entry) int64 {
	return int64(len(token) + len(e.data) + entryOverhead)
}

// evictionSamples is how many entries one look at the map samples: Redis's
// maxmemory-samples default.
const evictionSamples = 5

// makeRoomLocked removes entries until need more bytes fit under the cap.
// m.mu must be held for writing.
//
// Each round samples a few entries from a random place in the map (Go starts
// every map iteration at a random place). Expired entries it meets go first,
// at no cost to anyone; otherwise the live entry nearest its expiry among all
// those sampled so far goes, as Redis's volatile-ttl policy does. The cost is
// a few map steps per entry removed, whatever the store's size.
func (m *MemStore) makeRoomLocked(need int64) {
	now := m.now()
	for m.bytes+need > m.maxBytes {
		if !m.sampleLocked(now) {
			m.evictBestLocked(now)
		}
	}
}

// sampleLocked looks at evictionSamples entries, removes those that have
// expired, offers the others to the pool, and reports whether it removed any.
func (m *MemStore) sampleLocked(now time.Duration) (removed bool) {
	seen := 0
	for token, e := range m.items {
		if e.expiresAt <= now {
			m.expireLocked(token, e)
			removed = true
		} else {
			m.pool.offer(candidate{token: token, expiresAt: e.expiresAt})
		}
		if seen++; seen == evictionSamples {
			break
		}
	}
	return removed
}

// evictBestLocked removes the pool's best candidate that the store still holds
// as the pool saw it, if there is one.
func (m *MemStore) evictBestLocked(now time.Duration) {
	for {
		c, ok := m.pool.takeBest()
		if !ok {
			return
		}
		e, held := m.items[c.token]
		if !held || e.expiresAt != c.expiresAt {
			continue // deleted or renewed since it was sampled
		}
		if e.expiresAt <= now {
			m.expireLocked(c.token, e)
		} else {
			m.dropLocked(c.token, e)
			m.counters.evicted++
		}
		return
	}
}

// expireLocked removes token, which holds e, an expired entry, and counts it.
// m.mu must be held for writing.
func (m *MemStore) expireLocked(token string, e entry) {
	m.dropLocked(token, e)
	m.counters.expired++
}

// poolSize is how many eviction candidates the pool keeps: Redis's
// EVPOOL_SIZE. Keeping the best of every sample between evictions makes each
// eviction choose among far more than evictionSamples entries.
const poolSize = 16

// candidate is an entry sampled for eviction, as it was when sampled.
type candidate struct {
	token     string
	expiresAt time.Duration
}

// evictionPool holds the best candidates sampled so far, nearest expiry
// first. Its entries may be stale: evictBestLocked checks each against the map.
type evictionPool struct {
	best []candidate // sorted by expiresAt, at most poolSize long
}

// offer adds c unless the pool holds poolSize candidates at least as good.
// The pool may then hold a token twice: the copy left after the first is
// evicted is stale, and dropped like any other.
func (p *evictionPool) offer(c candidate) {
	if len(p.best) == poolSize && c.expiresAt >= p.best[poolSize-1].expiresAt {
		return // the common case once the pool is full: no better than any
	}
	i := sort.Search(len(p.best), func(j int) bool { return p.best[j].expiresAt > c.expiresAt })
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

// counters are the figures Stats reports beyond the map and its size. They
// are guarded by MemStore.mu, and only grow.
type counters struct {
	expired              uint64        // expired entries removed by the janitor or to make room
	evicted              uint64        // live entries evicted to keep under the cap
	sweeps               uint64        // janitor passes completed
	lastSweep            time.Duration // how long the last pass took
	lastSweepLongestHold time.Duration // the longest single lock hold of the last pass
}

// Stats is a store's figures at one moment, for monitoring. The counters
// count from New and keep their values after Close.
type Stats struct {
	Sessions             int           // entries held, as Len: expired ones not yet removed included
	Bytes                int64         // their accounted size: see WithMaxBytes
	MaxBytes             int64         // the cap set by WithMaxBytes; 0 means none
	Expired              uint64        // expired sessions removed by the janitor or to make room under the cap
	Evicted              uint64        // live sessions evicted to keep under the cap
	Sweeps               uint64        // janitor passes completed
	LastSweep            time.Duration // how long the last janitor pass took
	LastSweepLongestHold time.Duration // the longest the last pass held the lock at one time
}

// Stats returns the store's figures. It takes the read lock for a moment,
// which requests share, so it is cheap enough for every metrics scrape.
func (m *MemStore) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return Stats{
		Sessions:             len(m.items),
		Bytes:                m.bytes,
		MaxBytes:             m.maxBytes,
		Expired:              m.counters.expired,
		Evicted:              m.counters.evicted,
		Sweeps:               m.counters.sweeps,
		LastSweep:            m.counters.lastSweep,
		LastSweepLongestHold: m.counters.lastSweepLongestHold,
	}
}
