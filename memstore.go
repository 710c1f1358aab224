// SPDX-License-Identifier: MIT

// Package memstore is an in-memory session store for the scs session manager
// (github.com/alexedwards/scs/v2), and a drop-in replacement for the original
// scs engine/memstore package.
//
// A MemStore keeps every session in one map guarded by one sync.RWMutex. It
// satisfies scs's Store, IterableStore, CtxStore and IterableCtxStore
// interfaces, and the original engine API (New, Find, Save, Delete):
//
//	sessionManager := scs.New()
//	sessionManager.Store = memstore.New(time.Minute)
//
// # When not to use it
//
// Sessions live in the memory of one process. They are lost when the process
// stops, unless it saves them with WriteFile and restores them with ReadFile,
// and two processes behind a load balancer do not share them. Use it where
// that is acceptable, or where a single process is all there is. When it is
// not, any scs store backed by Redis or PostgreSQL has the same interface:
// changing the store is a one-line change.
//
// Under a flood of new sessions a store grows without limit unless a cap is
// set with WithMaxBytes; Stats reports what it holds.
//
// # Expiry and clocks
//
// scs hands over expiry times that carry no monotonic clock reading. At Commit
// the store turns an expiry into the session's remaining lifetime, measured
// against the wall clock at that moment, and from then on counts that lifetime
// down on the monotonic clock. A later step of the wall clock (an NTP
// correction, a manual change) therefore neither lengthens nor shortens a
// stored session. Go's monotonic clock does not run while the machine is
// suspended (it is Linux's CLOCK_MONOTONIC), though: a session outlives its
// expiry by the time the machine spent suspended. An expiry at or before the
// moment of Commit deletes the session.
//
// Find never returns an expired session. Expired sessions keep their memory
// until the janitor, a background goroutine started by New when given a
// positive cleanup interval, removes them, or until a store with a byte cap
// meets them while making room. The janitor walks the map in small
// batches and releases the lock between batches, so a request never waits
// behind a whole sweep. Close stops it; a store that is garbage-collected
// without being closed stops it too.
//
// # Read-only slices
//
// Commit stores a private copy of the caller's bytes. Find and All return the
// stored slices themselves, without copying: callers must treat them as
// read-only. Their capacity equals their length, so an append by a caller
// always copies and never writes into the store.
//
// # Concurrency
//
// Every method is safe for concurrent use by multiple goroutines.
package memstore

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// MemStore is an in-memory session store. Create one with New; the zero value
// is not usable. All methods are safe for concurrent use, and all of them keep
// working after Close.
type MemStore struct {
	epoch    time.Time // the zero of the store's monotonic clock: deadlines count from it
	maxBytes int64     // the cap set by WithMaxBytes; 0 means none
	janitor  *janitor  // the background sweep; nil when New was given no cleanup interval

	mu       sync.RWMutex     // guards the fields below
	items    map[string]entry // every session held, expired ones included until removed
	bytes    int64            // the accounted size of items: the sum of entrySize over them
	pool     evictionPool     // the best eviction candidates seen so far, kept between evictions
	counters counters         // what Stats reports beyond the map and its size
}

// entry is one session as stored.
type entry struct {
	data      []byte        // a private copy with cap == len, never modified once stored
	expiresAt time.Duration // deadline on the store's monotonic clock (time since epoch)
}

// Option configures a store; pass options to New.
type Option func(*MemStore)

// WithMaxBytes caps the memory the store accounts for at n bytes. Each
// session counts len(token) + len(data) + 128, the 128 standing for the map
// slot, headers and allocation rounding, so that the cap bounds the heap the
// sessions really take. A Commit that would pass the cap first removes
// expired sessions, then evicts the live sessions nearest their expiry, and
// one session larger than the whole cap is refused with ErrTooLarge. An n of
// zero or less means no cap, the default.
func WithMaxBytes(n int64) Option {
	return func(m *MemStore) { m.maxBytes = max(n, 0) }
}

// New returns a store whose janitor removes expired sessions every
// cleanupInterval. With a cleanupInterval of zero or less no goroutine is
// started and expired sessions are removed only when overwritten, deleted or
// met while making room under a cap (Find still never returns them).
//
// Call Close when the store is no longer needed to stop the janitor. A store
// that becomes unreachable without Close stops its janitor when it is
// garbage-collected.
func New(cleanupInterval time.Duration, opts ...Option) *MemStore {
	m := &MemStore{
		epoch: time.Now(),
		items: make(map[string]entry),
	}
	for _, opt := range opts {
		opt(m)
	}
	if cleanupInterval > 0 {
		m.janitor = startJanitor(m, cleanupInterval)
	}
	return m
}

// Find returns the data of the session with the given token. A token that is
// unknown or expired gives (nil, false, nil); the error is always nil.
//
// The returned slice is the store's own copy, not a fresh one: callers must
// not modify it. A session committed with nil or empty data gives an empty,
// non-nil slice and found == true.
func (m *MemStore) Find(token string) (b []byte, found bool, err error) {
	m.mu.RLock()
	e, ok := m.items[token]
	m.mu.RUnlock()
	if !ok || e.expiresAt <= m.now() {
		return nil, false, nil
	}
	return e.data, true, nil
}

// Commit stores a copy of b under token until expiry, replacing any session
// the token held before, data and expiry both. The caller may reuse b as soon
// as Commit returns. An expiry at or before now (the zero time.Time included)
// deletes the token instead.
//
// Under a cap set by WithMaxBytes, Commit may evict other sessions to make
// room; a session larger than the whole cap is refused with an error wrapping
// ErrTooLarge, and the token keeps what it held. Otherwise the error is nil.
func (m *MemStore) Commit(token string, b []byte, expiry time.Time) error {
	e, live := m.newEntry(b, expiry)
	if !live {
		return m.Delete(token)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.putLocked(token, e)
}

// Save is Commit under the name the original scs engine API used.
func (m *MemStore) Save(token string, b []byte, expiry time.Time) error {
	return m.Commit(token, b, expiry)
}

// Delete removes the session with the given token. Deleting an unknown token
// does nothing. The error is always nil.
func (m *MemStore) Delete(token string) error {
	m.mu.Lock()
	m.removeLocked(token)
	m.mu.Unlock()
	return nil
}

// All returns a new map from token to data holding every unexpired session.
// The map is the caller's; its slices are the store's own and must not be
// modified. All walks the store in batches, releasing the lock between them,
// so it is not an atomic snapshot: a session committed or deleted while All
// runs may or may not be in the result. The error is always nil.
func (m *MemStore) All() (map[string][]byte, error) {
	all := make(map[string][]byte, m.Len())
	m.walkLive(func(token string, e entry) {
		all[token] = e.data // of a token met twice (see liveSessions), the newer comes last
	})
	return all, nil
}

// walkLive calls visit for every unexpired entry, under the read lock held a
// batch at a time (see walk).
func (m *MemStore) walkLive(visit func(token string, e entry)) {
	now := m.now()
	m.walk(m.mu.RLocker(), func(token string, e entry) {
		if e.expiresAt > now {
			visit(token, e)
		}
	}, nil)
}

// Len returns the number of sessions held, counting expired ones that the
// janitor has not removed yet. It takes constant time.
func (m *MemStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.items)
}

// FindCtx is Find for scs's CtxStore interface. If ctx is already done it
// returns ctx.Err() and nothing else.
func (m *MemStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	return m.Find(token)
}

// CommitCtx is Commit for scs's CtxStore interface. If ctx is already done it
// returns ctx.Err() and changes nothing.
func (m *MemStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.Commit(token, b, expiry)
}

// DeleteCtx is Delete for scs's CtxStore interface. If ctx is already done it
// returns ctx.Err() and changes nothing.
func (m *MemStore) DeleteCtx(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.Delete(token)
}

// AllCtx is All for scs's IterableCtxStore interface. If ctx is already done
// it returns ctx.Err() and a nil map.
func (m *MemStore) AllCtx(ctx context.Context) (map[string][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.All()
}

// now reads the store's monotonic clock. It never steps with the wall clock.
func (m *MemStore) now() time.Duration {
	return time.Since(m.epoch)
}

// newEntry copies b into an entry that lives until expiry, and reports
// whether that lies in the future. It runs without the lock.
func (m *MemStore) newEntry(b []byte, expiry time.Time) (e entry, live bool) {
	now := time.Now()           // one clock read gives both readings
	lifetime := expiry.Sub(now) // wall-clock difference: scs's expiries carry no monotonic reading
	if lifetime <= 0 {
		return entry{}, false
	}
	data := make([]byte, len(b)) // exact size, never nil: cap == len keeps readers' appends out
	copy(data, b)
	return entry{data: data, expiresAt: addSaturating(now.Sub(m.epoch), lifetime)}, true
}

// expiry turns e's deadline back into a wall-clock time, as of now.
func (m *MemStore) expiry(e entry) time.Time {
	now := time.Now()
	return now.Add(e.expiresAt - now.Sub(m.epoch)).Round(0)
}

// putLocked stores e under token, replacing what the token held, after
// making room for it under the cap. m.mu must be held for writing. Every
// insertion goes through here.
func (m *MemStore) putLocked(token string, e entry) error {
	size := entrySize(token, e)
	switch {
	case m.maxBytes == 0: // overwrite in place: the common case costs one lookup less
		if old, ok := m.items[token]; ok {
			m.bytes -= entrySize(token, old)
		}
	case size > m.maxBytes:
		return fmt.Errorf("%w: a session of %d bytes under a cap of %d", ErrTooLarge, size, m.maxBytes)
	default:
		m.removeLocked(token) // what it held must neither take room nor be evicted for the new entry
		m.makeRoomLocked(size)
	}
	m.items[token] = e
	m.bytes += size
	return nil
}

// removeLocked removes token, if held. m.mu must be held for writing.
func (m *MemStore) removeLocked(token string) {
	if e, ok := m.items[token]; ok {
		m.dropLocked(token, e)
	}
}

// dropLocked removes token, which holds e. m.mu must be held for writing.
// Every removal (Delete, an expired Commit, the sweep, an eviction) comes
// here, so that the accounted size always matches the map.
func (m *MemStore) dropLocked(token string, e entry) {
	delete(m.items, token)
	m.bytes -= entrySize(token, e)
}

// batchSize bounds how many entries a walk over the whole map visits per lock
// hold: a request waits behind one batch at most, whatever the store's size.
const batchSize = 1024

// walk calls visit for every entry in the map, holding lk while it does but
// releasing and retaking it every batchSize entries, and returns the longest
// single hold. visit runs with lk held. Between batches, with lk released,
// walk calls between, if not nil, and stops if it returns false.
//
// The Go specification makes this safe with writers running between batches:
// an entry removed before the walk reaches it is not visited, an entry added
// during the walk may or may not be, and every other entry is visited once,
// with its value as of the visit.
func (m *MemStore) walk(lk sync.Locker, visit func(token string, e entry), between func() bool) (longestHold time.Duration) {
	lk.Lock()
	heldSince := time.Now()
	visited := 0
	for token, e := range m.items {
		visit(token, e)
		if visited++; visited%batchSize == 0 {
			longestHold = max(longestHold, time.Since(heldSince))
			lk.Unlock()
			if between != nil && !between() {
				return longestHold
			}
			lk.Lock()
			heldSince = time.Now()
		}
	}
	longestHold = max(longestHold, time.Since(heldSince))
	lk.Unlock()
	return longestHold
}

// addSaturating returns a+b for a non-negative a, capped at the largest
// Duration so that an expiry far in the future cannot wrap into the past.
func addSaturating(a, b time.Duration) time.Duration {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}
