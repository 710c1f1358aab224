// SPDX-License-Identifier: MIT

package memstore

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// MemStore is an in-memory session store. Create one with New or Open; the
// zero value is not usable. All methods are safe for concurrent use, and all of them keep
// working after Close.
type MemStore struct {
	epoch     time.Time    // the zero of the store's monotonic clock: deadlines count from it
	seed      maphash.Seed // hashes tokens for the index: random per store, so collisions cannot be aimed
	maxBytes  int64        // the cap set by WithMaxBytes; 0 means none
	chunkSize int          // the size of a shared chunk: see chunkSizeFor
	fewHashes bool         // for tests only: tokens hash to their length modulo fewHashes
	janitor   *janitor     // the background sweep; nil when New was given no cleanup interval

	syncInterval time.Duration // see WithSyncInterval; Open's stores only
	rewriteSlack int64         // see rewriteSlack; smaller in tests
	lockTimeout  time.Duration // see WithLockTimeout; Open's and OpenReadOnly's stores only
	log          *durableLog   // records every change on disk; nil but in stores from Open

	tail tail // where records are written; its own lock, taken after mu when both are

	// Read by Find without a lock; replaced or changed under mu. The pads
	// keep them off the cache lines that every Commit writes (tail.mu and
	// mu), so that Finds on other cores do not miss on them.
	_     [cacheLine]byte
	table atomic.Pointer[table]    // the index: see index.go
	dir   atomic.Pointer[chunkDir] // the chunks records are in, by id
	clock *clock                   // a recent reading of the clock, for Find: see clock.go
	_     [cacheLine]byte

	mu           sync.RWMutex        // writers hold it; walks over the index share it
	chunkIDs     uint32              // the ids given to chunks so far: 1 to chunkIDs
	freeChunkIDs []uint32            // ids of dropped chunks, to give again
	chunkBytes   int64               // what the chunks registered cost (see chunkCost): live, dead and unwritten bytes
	halfDead     []*chunk            // chunks found at least half dead, maybe not yet compactable
	recordBytes  int64               // the size of every record the index points to
	pool         evictionPool        // the best eviction candidates seen so far, kept between evictions
	rng          rng                 // where eviction samples the index
	restores     int                 // ReadFroms adding sessions now
	removed      map[string]struct{} // tokens removed while a ReadFrom ran: see noteRemovalLocked
	counters     counters            // what Stats reports beyond the sizes
	kept         keptToken           // the session a Commit is replacing, which making room spares
	deleted      deletedSet          // tokens remembered as deleted: see deleted.go
}

// cacheLine is the size of a cache line on the processors Go runs on, or
// more.
const cacheLine = 128

// maxSession is the largest record a store holds (alone in its chunk), so
// that a chunk's size and accounting fit in an int on every platform.
const maxSession = math.MaxInt32

// New returns a store whose janitor removes expired sessions every
// cleanupInterval. With a cleanupInterval of zero or less no goroutine is
// started and expired sessions are removed only when overwritten, deleted or
// met while making room under a cap (Find still never returns them).
//
// Call Close when the store is no longer needed to stop the janitor. A store
// that becomes unreachable without Close stops its janitor when it is
// garbage-collected.
func New(cleanupInterval time.Duration, opts ...Option) *MemStore {
	m := newStore(opts)
	m.startJanitor(cleanupInterval)
	return m
}

// Close stops the janitor and returns once its goroutine has exited: a sweep
// in progress stops after the batch it is on. It is safe to call more than
// once and from several goroutines at a time.
//
// Of a store from Open, Close also writes and syncs the changes not on disk
// yet, waits for a rewrite in progress (or writes the sessions afresh, if a
// disk error lost changes since the last), closes the files and releases
// the directory. It returns the first error met, wrapping ErrNotDurable if
// changes are missing from the disk; every later call returns the same.
// Otherwise Close returns nil.
//
// After Close every method keeps working in memory and Find still hides
// expired sessions, reading the clock at every call (see Find); only the
// background removal of expired sessions stops,
// and a store from Open records nothing more: Delete, and Commit under a sync
// interval of 0, then return an error wrapping ErrNotDurable.
func (m *MemStore) Close() error {
	m.clock.stop()
	if m.janitor != nil {
		m.janitor.stop()
		<-m.janitor.exited
	}
	if m.log != nil {
		return m.log.close()
	}
	return nil
}

// newStore returns an empty store with opts applied, with no goroutine.
func newStore(opts []Option) *MemStore {
	m := &MemStore{
		epoch:        time.Now(),
		seed:         maphash.MakeSeed(),
		syncInterval: defaultSyncInterval,
		rewriteSlack: rewriteSlack,
		rng:          rng{state: rand.Uint64()},
	}
	m.table.Store(emptyTable)
	m.dir.Store(&chunkDir{})
	m.clock = startClock(m.epoch)
	runtime.AddCleanup(m, (*clock).stop, m.clock)
	for _, opt := range opts {
		if opt != nil { // a nil Option is no option, as in a list built conditionally
			opt(m)
		}
	}
	m.chunkSize = chunkSizeFor(m.maxBytes)
	m.initDeleted()
	return m
}

// startJanitor starts the janitor, if cleanupInterval asks for one.
func (m *MemStore) startJanitor(cleanupInterval time.Duration) {
	if cleanupInterval > 0 {
		m.janitor = startJanitor(m, cleanupInterval)
	}
}

// Find returns the data of the session with the given token. A token that is
// unknown or expired gives (nil, false, nil); the error is always nil.
//
// The returned slice is the store's own bytes, not a copy: callers must not
// modify it. Its capacity equals its length, so an append copies. A session
// committed with nil or empty data gives an empty, non-nil slice and found ==
// true.
//
// Find takes no lock: it never waits for a Commit, a Delete, the janitor or
// a restore.
func (m *MemStore) Find(token string) (b []byte, found bool, err error) {
	b, deadline, found := m.lookup(m.hash(token), token)
	if !found || m.clock.passed(deadline) {
		return nil, false, nil
	}
	return b, true, nil
}

// Commit stores a copy of b under token until expiry, replacing any session
// the token held before, data and expiry both. The caller may reuse b as soon
// as Commit returns. An expiry at or before now (the zero time.Time included)
// deletes the token instead.
//
// Under a cap set by WithMaxBytes, Commit may evict other sessions to make
// room; a session larger than the whole cap is refused with an error wrapping
// ErrTooLarge, and the token keeps what it held. So is a session of 2 GiB or
// more, with or without a cap.
//
// A token that Delete removed (or a Commit with an expiry already past) is
// refused until the deadline its session had, with an error wrapping
// ErrDeleted, and the store is unchanged: a request that loaded the session
// before a logout cannot bring it back. See WithReusableDeletedTokens.
//
// In a store from Open, Commit records the session on disk too, within the
// sync interval; with an interval of 0 it returns once the session is on
// disk, or an error wrapping ErrNotDurable if it could not be written (the
// session is held in memory all the same). A Commit whose expiry has passed
// is a Delete, and waits and fails as Delete does. Otherwise the error is
// nil.
func (m *MemStore) Commit(token string, b []byte, expiry time.Time) error {
	deadline, live := m.deadline(expiry)
	if !live {
		return m.Delete(token)
	}
	size := recordSize(len(token), len(b))
	if err := m.checkSize(size); err != nil {
		return err
	}
	h := m.hash(token)
	hint := m.hint(h, token) // the lookup, too, happens outside m.mu
	r := m.reserve(size)     // and so does the copy
	writeRecord(r.buf, token, b)

	m.mu.Lock()
	if m.refusedLocked(token) {
		m.deleted.refused++
		m.discardLocked(r)
		m.mu.Unlock()
		return errDeleted
	}
	m.putLocked(h, token, hint, r, deadline)
	var synced *syncBatch
	if m.log != nil {
		synced = m.log.queuePutLocked(r, expiry)
	}
	m.mu.Unlock()
	if err := awaitSync(synced); err != nil && m.syncInterval == 0 {
		return err
	}
	return nil // under an interval, a Commit waits only when the disk falls behind, and promises nothing
}

// Save is Commit under the name the original scs engine API used.
func (m *MemStore) Save(token string, b []byte, expiry time.Time) error {
	return m.Commit(token, b, expiry)
}

// Delete removes the session with the given token, and remembers the token
// until the deadline the session had, so that Commit refuses it until then
// (see WithReusableDeletedTokens). Deleting an unknown token does nothing in
// memory and remembers nothing.
//
// In a store from Open, Delete returns once the deletion is on disk, or an
// error wrapping ErrNotDurable if it could not be written (the session is
// gone from memory all the same). Otherwise the error is nil.
func (m *MemStore) Delete(token string) error {
	h := m.hash(token)
	m.mu.Lock()
	if i, ok := m.lookupLocked(h, token); ok {
		deadline := m.slotLocked(i).deadline
		m.removeLocked(i)
		m.rememberDeletedLocked(token, deadline)
		m.compactWhileTooDeadLocked()
	}
	var synced *syncBatch
	if m.log != nil {
		synced = m.log.queueDeleteLocked(token)
	}
	m.mu.Unlock()
	return awaitSync(synced)
}

// All returns a new map from token to data holding every unexpired session.
// The map is the caller's; its slices are the store's own and must not be
// modified. All walks the store in batches, releasing the lock between them,
// so it is not an atomic snapshot: a session committed or deleted while All
// runs may or may not be in the result. The error is always nil.
func (m *MemStore) All() (map[string][]byte, error) {
	all := make(map[string][]byte, m.Len())
	m.walkLive(func(token, data []byte) {
		all[string(token)] = data
	})
	return all, nil
}

// Len returns the number of sessions held, counting expired ones that the
// janitor has not removed yet. It takes constant time.
func (m *MemStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.lenLocked()
}

// lenLocked returns the number of sessions held. m.mu must be held.
func (m *MemStore) lenLocked() int { return m.table.Load().live }

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

// deadline turns expiry into a deadline on the store's clock, and reports
// whether it lies in the future.
func (m *MemStore) deadline(expiry time.Time) (deadline time.Duration, live bool) {
	now := time.Now()           // one clock read gives both readings
	lifetime := expiry.Sub(now) // wall-clock difference: scs's expiries carry no monotonic reading
	if lifetime <= 0 {
		return 0, false
	}
	return addSaturating(now.Sub(m.epoch), lifetime), true
}

// expiry turns a deadline back into a wall-clock time, as the two clocks
// stood at now (a reading of time.Now, taken once for many deadlines: a
// clock read costs more than the rest).
func (m *MemStore) expiry(deadline time.Duration, now time.Time) time.Time {
	return now.Add(deadline - now.Sub(m.epoch)).Round(0)
}

// checkSize refuses a record of size bytes that the store cannot hold.
func (m *MemStore) checkSize(size int) error {
	switch {
	case size > maxSession:
		return fmt.Errorf("%w: a session of %d bytes; the most a store holds is %d", ErrTooLarge, size, maxSession)
	case m.maxBytes > 0 && !m.holdsAlone(size):
		return fmt.Errorf("%w: a session of %d bytes under a cap of %d", ErrTooLarge, size, m.maxBytes)
	}
	return nil
}

// holdsAlone reports whether the cap holds a record of size bytes in a
// store holding nothing else: with the chunk directory's first segment, the
// smallest table, the record's chunk (as the allocator rounds it) and the
// room kept below the cap for a chunk's unwritten tail (see makeRoomLocked).
func (m *MemStore) holdsAlone(size int) bool {
	room := m.maxBytes - (segBytes + minSlots*slotBytes + chunkHeader + int64(m.chunkSize))
	switch {
	case int64(size) > room:
		return false
	case size <= m.chunkSize*ownChunkAbove/16 || int64(size)+int64(size)/8+8<<10 <= room:
		return true // no size class adds more than an eighth and a page: the allocator need not be asked
	}
	return int64(sizeClass(size)) <= room
}

// hash returns the index key of token: 32 bits of its hash, bit 31 set so
// that it is never one of the values a slot holds without a session (see
// index.go). Tokens that share a key are told apart by their stored bytes.
func (m *MemStore) hash(token string) uint64 {
	if m.fewHashes {
		return indexKey(uint64(len(token) % fewHashes))
	}
	return indexKey(maphash.String(m.seed, token))
}

// hashBytes is hash for a token held as bytes; maphash guarantees the same
// result.
func (m *MemStore) hashBytes(token []byte) uint64 {
	if m.fewHashes {
		return indexKey(uint64(len(token) % fewHashes))
	}
	return indexKey(maphash.Bytes(m.seed, token))
}

func indexKey(h uint64) uint64 { return h&0x7fff_ffff | 1<<31 }

// fewHashes is how many index keys a store whose tokens are made to collide
// spreads them over.
const fewHashes = 3

// putLocked makes the record in r, written by now, the session of token,
// whose hash is h, replacing what the token held (see lookupHintedLocked),
// after making room for it under the cap. m.mu must be held for writing.
// Every insertion goes through here.
//
// A session the token held is replaced in its slot, never removed and
// inserted again, so that a lock-free Find never misses it, cap or not:
// room is made with the session in place, and making room never evicts it
// (see keptToken). If the cap cannot hold the old record and the new at
// once, the new one is placed first and room made again after.
func (m *MemStore) putLocked(h uint64, token string, hint slotHint, r reservation, deadline time.Duration) {
	i, held := m.lookupHintedLocked(h, token, hint)
	if m.maxBytes > 0 {
		m.kept = keptToken{hash: h, token: token, set: true}
		defer func() { m.kept = keptToken{} }()
		before := m.hintLocked(i, held)
		m.makeRoomLocked(r, !held)
		i, held = m.lookupHintedLocked(h, token, before) // making room may have rebuilt the table, or moved the record
	}
	m.placeLocked(r)
	if held {
		old := m.slotLocked(i)
		m.setLocked(i, r.slot(deadline))
		m.releaseLocked(old.at)
	} else {
		m.insertLocked(h, r.slot(deadline))
	}
	m.recordBytes += int64(len(r.buf))
	if m.maxBytes > 0 {
		m.makeRoomLocked(reservation{}, false) // the old record, now dead, may have had to stay until now
	}
	m.compactWhileTooDeadLocked()
}

// keptToken is the token whose session a Commit is replacing: making room
// for the new record removes it only if it has expired, so that a reader
// sees the old session until the new one takes its slot. Guarded by
// MemStore.mu.
type keptToken struct {
	hash  uint64
	token string
	set   bool
}

// keeps reports whether the session whose token hashes to h and whose
// record is at at is the kept one. m.mu must be held.
func (m *MemStore) keeps(h uint64, at location) bool {
	return m.kept.set && h == m.kept.hash && m.tokenIs(at, m.kept.token)
}

// tokenIs reports whether the record at at holds token. m.mu must be held.
func (m *MemStore) tokenIs(at location, token string) bool {
	_, ok := m.chunkAt(at.chunk).match(at.offset, token)
	return ok
}

// removeLocked removes the session in slot i of the current table: Delete,
// an expired Commit, the sweep, eviction and compaction come here, and an
// overwrite without a cap goes to releaseLocked alone, so that the sizes
// always match the index. m.mu must be held for writing.
func (m *MemStore) removeLocked(i int) {
	s := m.slotLocked(i)
	m.noteRemovalLocked(s.at)
	m.clearSlotLocked(i)
	m.releaseLocked(s.at)
}

// removeAtLocked removes the session whose record is at at and whose token
// hashes to h, if the store still holds it there, and returns its slot. m.mu
// must be held for writing.
func (m *MemStore) removeAtLocked(h uint64, at location) (s slot, removed bool) {
	i, ok := m.slotAtLocked(h, at)
	if !ok {
		return slot{}, false
	}
	s = m.slotLocked(i)
	m.removeLocked(i)
	return s, true
}

// noteRemovalLocked remembers the token of the record at at, being removed,
// while a ReadFrom runs, so that the snapshot's copy of a session the store
// held when the ReadFrom began does not take its place. m.mu must be held
// for writing.
func (m *MemStore) noteRemovalLocked(at location) {
	if m.restores > 0 {
		token, _ := m.chunkAt(at.chunk).record(at)
		m.removed[string(token)] = struct{}{}
	}
}

// releaseLocked counts the record at at, which the index no longer points
// to, as dead. m.mu must be held for writing.
func (m *MemStore) releaseLocked(at location) {
	c, size := m.chunkAt(at.chunk), m.size(at)
	c.live -= size
	m.recordBytes -= int64(size)
	if c.live == 0 {
		m.dropIfIdleLocked(c)
	} else {
		m.noteDeadLocked(c)
	}
	if a := m.activeChunk(); m.lenLocked() == 0 && a != nil && a.id != 0 && a.live == 0 {
		m.dropIfIdleLocked(a) // kept while the store held sessions: see dropIfIdleLocked
	}
}

// size returns the size of the record at at, without reading it: removing
// a session touches the index alone. m.mu must be held.
func (m *MemStore) size(at location) int {
	if at.size == 0 {
		return len(m.chunkAt(at.chunk).buf)
	}
	return int(at.size)
}

// batchSize bounds how many slots' worth of sessions a walk over the whole
// index visits per lock hold: a request waits behind one batch at most,
// whatever the store's size.
const batchSize = 1024

// walkLive calls visit for every unexpired session, under the read lock held
// a batch at a time (see walk). token and data are the store's own bytes.
func (m *MemStore) walkLive(visit func(token, data []byte)) {
	m.walkLiveSlots(func(s slot, token, data []byte) { visit(token, data) })
}

// walkLiveSlots is walkLive with each session's slot.
func (m *MemStore) walkLiveSlots(visit func(s slot, token, data []byte)) {
	now := m.now()
	m.walk(m.mu.RLocker(), func(_ uint64, s slot) {
		if s.deadline > now {
			token, data := m.chunkAt(s.at.chunk).record(s.at)
			visit(s, token, data)
		}
	}, nil)
}

// addSaturating returns a+b for a non-negative a, capped at the largest
// Duration so that an expiry far in the future cannot wrap into the past.
func addSaturating(a, b time.Duration) time.Duration {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}
