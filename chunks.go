// SPDX-License-Identifier: MIT

package memstore

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Sessions are held as records in large byte slices, the chunks, so that the
// garbage collector sees a few thousand pointer-free objects where it would
// otherwise mark two objects per session.
//
// A record is its header, the token and the data, side by side:
//
//	token length (uvarint) | data length (uvarint) | token | data
//
// A record is written once and never modified, so a slice that Find returned
// stays valid, and its chunk alive, whatever becomes of the session later.
// An overwrite, a delete or an expiry leaves the old record behind as dead
// bytes; compaction copies the live records of a mostly dead chunk into the
// active one and drops it.

// maxChunkSize is the size of a shared chunk: large enough that a store
// holds few of them, small enough that compacting one is a short copy.
const maxChunkSize = 64 << 10

// minChunkSize is the size of the first chunk of a store, or of one whose
// sessions have all gone: each later chunk doubles the one before, up to
// the store's chunk size, so that a store of a few sessions, whose one chunk
// empties and is dropped whenever they all end, does not allocate 64 KiB
// for the next.
const minChunkSize = 1 << 10

// Shares of a chunk, in sixteenths of its size.
const (
	// A record larger than 1/16 of the chunk size gets a chunk of its own,
	// of its size (as the allocator rounds it), so that the tail a shared chunk wastes when the next
	// record does not fit stays under 1/16 of it.
	ownChunkAbove = 1
	// A chunk at least half dead is worth compacting: the copy is no larger
	// than what it frees.
	halfDeadAt = 8
)

// chunk is one slice of records.
type chunk struct {
	buf []byte // the records; its length, fixed at creation, is the chunk's size; its capacity, what the allocator gave

	// Written under tail.mu, read without it.
	used    atomic.Int64 // bytes of buf reserved so far
	pending atomic.Int32 // records reserved but not yet published in the index

	// Guarded by MemStore.mu.
	id       uint32 // its place in MemStore.dir; 0 until it is registered
	live     int    // bytes of the records the index points to
	listedAt int    // its place in MemStore.halfDead, plus one; 0 when not there
}

// dead returns the bytes of c that no session uses, its unreserved tail
// included.
func (c *chunk) dead() int { return len(c.buf) - c.live }

// recordSize is the size of the record holding token and data.
func recordSize(tokenLen, dataLen int) int {
	return uvarintLen(tokenLen) + uvarintLen(dataLen) + tokenLen + dataLen
}

func uvarintLen(n int) int {
	size := 1
	for ; n >= 0x80; n >>= 7 {
		size++
	}
	return size
}

// writeRecord writes the record of token and data to dst, which has exactly
// its size.
func writeRecord(dst []byte, token string, data []byte) {
	n := binary.PutUvarint(dst, uint64(len(token)))
	n += binary.PutUvarint(dst[n:], uint64(len(data)))
	n += copy(dst[n:], token)
	copy(dst[n:], data)
}

// record returns the token and data of the record at at, which is in c.
// The data slice has cap == len, so that a caller's append copies.
func (c *chunk) record(at location) (token, data []byte) {
	token, data, _ = splitRecord(c.buf[at.offset:])
	return token, data
}

// match returns the data of the record at offset off in c if its token is
// token.
func (c *chunk) match(off uint16, token string) (data []byte, ok bool) {
	b := c.buf[off:]
	tokenLen, dataLen, n := recordHeader(b)
	if tokenLen != len(token) || string(b[n:n+tokenLen]) != token {
		return nil, false
	}
	start := n + tokenLen
	end := start + dataLen
	return b[start:end:end], true
}

// recordHeader returns the lengths of the token and data of the record that
// starts b, and the size of its header. It reads lengths of one and two
// bytes, tokens under 128 bytes and data under 16 KiB, without a loop.
func recordHeader(b []byte) (tokenLen, dataLen, n int) {
	tokenLen, n = int(b[0]), 1
	if tokenLen >= 0x80 {
		v, k := binary.Uvarint(b)
		tokenLen, n = int(v), k
	}
	dataLen = int(b[n])
	switch {
	case dataLen < 0x80:
		n++
	case b[n+1] < 0x80:
		dataLen = dataLen&0x7f | int(b[n+1])<<7
		n += 2
	default:
		v, k := binary.Uvarint(b[n:])
		dataLen, n = int(v), n+k
	}
	return tokenLen, dataLen, n
}

// chunkDir finds a chunk by its id without a lock, for Find. Its segments
// are never replaced, only added: a reader holding an older chunkDir reaches
// the same entries, which writers set under MemStore.mu.
type chunkDir struct {
	segs []*[chunkSegSize]atomic.Pointer[chunk]
}

// chunkSegSize is how many chunk ids a segment of chunkDir holds: small,
// since a store holding a session holds a segment, which counts against
// the cap.
const chunkSegSize = 64

// segBytes is the size of a segment of chunkDir.
const segBytes = chunkSegSize * int64(unsafe.Sizeof(atomic.Pointer[chunk]{}))

// dirBytes returns what the chunk directory's segments take, counted in
// Stats.Bytes and against the cap. A segment is freed only with the whole
// directory, when the last chunk is dropped, so that a reader holding an
// older chunkDir finds the same entries.
func (m *MemStore) dirBytes() int64 {
	return int64(len(m.dir.Load().segs)) * segBytes
}

// chunkAt returns the chunk whose id is id, nil if none has it.
func (m *MemStore) chunkAt(id uint32) *chunk {
	d := m.dir.Load()
	if seg := int(id / chunkSegSize); seg < len(d.segs) {
		return d.segs[seg][id%chunkSegSize].Load()
	}
	return nil
}

// setChunkLocked makes c the chunk of id, adding a segment to the directory
// if id needs one. m.mu must be held for writing.
func (m *MemStore) setChunkLocked(id uint32, c *chunk) {
	d := m.dir.Load()
	seg := int(id / chunkSegSize)
	if seg >= len(d.segs) {
		d = &chunkDir{segs: append(d.segs[:len(d.segs):len(d.segs)], new([chunkSegSize]atomic.Pointer[chunk]))}
		m.dir.Store(d)
	}
	d.segs[seg][id%chunkSegSize].Store(c)
}

// splitRecord returns the token and data of the record that starts b, and
// its size.
func splitRecord(b []byte) (token, data []byte, size int) {
	tokenLen, dataLen, start := recordHeader(b)
	end := start + tokenLen + dataLen
	return b[start : start+tokenLen], b[start+tokenLen : end : end], end
}

// tail is where new records are written: the end of the active chunk.
// Commit reserves room there under tail.mu rather than MemStore.mu, and
// copies outside both, so that readers never wait behind a copy.
type tail struct {
	mu     sync.Mutex
	active atomic.Pointer[chunk] // the shared chunk records are appended to; nil before the first; set under mu
}

// reservation is room for one record, taken but not yet published.
type reservation struct {
	c   *chunk
	off int
	buf []byte // c.buf[off:off+size], to be written before publishing
}

// slot returns the slot of r's record, once placed.
func (r reservation) slot(deadline time.Duration) slot {
	return slot{at: r.c.location(r.off, len(r.buf)), deadline: deadline}
}

// location returns the location of the record of size bytes at off in c.
func (c *chunk) location(off, size int) location {
	if off == 0 && size == len(c.buf) {
		return location{chunk: c.id} // alone in its chunk (see reservation.alone): see MemStore.size
	}
	return location{chunk: c.id, offset: uint16(off), size: uint16(size)}
}

// reserve takes room for a record of size bytes, in the active chunk or, for
// a large record, in a new chunk of its own. The chunk counts the record as
// pending until publish or compaction places it in the index. reserve never
// takes MemStore.mu, so it may be called with or without it held.
func (m *MemStore) reserve(size int) reservation {
	if size > m.chunkSize*ownChunkAbove/16 {
		c := &chunk{buf: allocate(size)}
		c.used.Store(int64(size))
		c.pending.Store(1)
		return reservation{c: c, buf: c.buf}
	}
	m.tail.mu.Lock()
	defer m.tail.mu.Unlock()
	c := m.tail.active.Load()
	if c == nil || len(c.buf)-int(c.used.Load()) < size {
		next := minChunkSize
		if c != nil {
			next = 2 * len(c.buf)
		}
		buf := allocate(max(size, min(next, m.chunkSize)))
		c = &chunk{buf: buf[:cap(buf)]} // a shared chunk uses the whole block it was given
		m.tail.active.Store(c)
	}
	off := int(c.used.Add(int64(size))) - size
	c.pending.Add(1)
	return reservation{c: c, off: off, buf: c.buf[off : off+size : off+size]}
}

// allocate returns a slice of n bytes whose capacity is the whole block the
// allocator gives it: a request is rounded up to the allocator's size
// class, or to whole pages past 32 KiB (4,097 bytes take 4,864; 32,769 take
// 40,960), and the cap counts what is really held.
func allocate(n int) []byte {
	return slices.Grow([]byte(nil), n)[:n]
}

// sizeClass returns the bytes the allocator gives a request of n bytes,
// without allocating more than 32 KiB to find out: past that it gives whole
// pages of 8 KiB.
func sizeClass(n int) int {
	const maxSmall, page = 32 << 10, 8 << 10
	if n > maxSmall {
		return (n + page - 1) &^ (page - 1)
	}
	return cap(allocate(n))
}

// chunkHeader is what a chunk costs beyond its bytes: the chunk itself, in
// the allocator's size class. Its directory entry is counted with the
// directory's segments (see dirBytes).
var chunkHeader = int64(cap(allocate(int(unsafe.Sizeof(chunk{})))))

// chunkCost returns the bytes c counts for in Stats.Bytes and against the
// cap: its block and its header.
func (m *MemStore) chunkCost(c *chunk) int64 {
	return int64(cap(c.buf)) + chunkHeader
}

// alone reports whether r's record has a chunk of its own.
func (r reservation) alone() bool { return r.off == 0 && len(r.buf) == len(r.c.buf) }

// registerLocked gives c an id, if it has none yet, and counts its bytes.
// m.mu must be held for writing.
func (m *MemStore) registerLocked(c *chunk) {
	if c.id != 0 {
		return
	}
	if n := len(m.freeChunkIDs); n > 0 {
		c.id = m.freeChunkIDs[n-1]
		m.freeChunkIDs = m.freeChunkIDs[:n-1]
	} else {
		m.chunkIDs++
		c.id = m.chunkIDs
	}
	m.setChunkLocked(c.id, c)
	m.chunkBytes += m.chunkCost(c)
}

// dropIfIdleLocked drops c, whose records are all dead, unless a record is
// still to be published in it, or it is the active chunk of a store that
// holds sessions: the next records go there, and dropping it would make the
// next Commit allocate another. A chunk kept is listed as half dead, so that
// it is dropped once it can be, when no longer active, by the compaction
// that Commit, Delete and the janitor run. m.mu must be held for writing.
func (m *MemStore) dropIfIdleLocked(c *chunk) {
	m.tail.mu.Lock()
	defer m.tail.mu.Unlock()
	if c.pending.Load() != 0 || (c == m.tail.active.Load() && m.lenLocked() > 0) {
		m.noteDeadLocked(c)
		return
	}
	if c == m.tail.active.Load() {
		m.tail.active.Store(nil)
	}
	m.dropLocked(c)
}

// dropLocked takes c out of the directory. Slices into it that callers hold
// keep it alive until they let go. m.mu must be held for writing.
func (m *MemStore) dropLocked(c *chunk) {
	m.unlistLocked(c)
	m.setChunkLocked(c.id, nil)
	m.freeChunkIDs = append(m.freeChunkIDs, c.id)
	m.chunkBytes -= m.chunkCost(c)
	c.id = 0
	if m.chunkBytes == 0 {
		// No chunk left: the directory goes too, so that a store emptied
		// holds nothing. A reader still holding the old one finds no chunk
		// in it, as it would in the old one's cleared entries.
		m.dir.Store(&chunkDir{})
		m.chunkIDs, m.freeChunkIDs = 0, nil
	}
}

// halfDead reports whether at least half of c is dead.
func (c *chunk) halfDead() bool {
	return c.dead() >= len(c.buf)*halfDeadAt/16
}

// noteDeadLocked lists c among the chunks at least half dead once it is, so
// that the store finds one to compact without a scan. m.mu must be held for
// writing.
func (m *MemStore) noteDeadLocked(c *chunk) {
	if c.listedAt == 0 && c.halfDead() {
		m.halfDead = append(m.halfDead, c)
		c.listedAt = len(m.halfDead)
	}
}

// unlistLocked takes c off m.halfDead, if it is there. m.mu must be held for
// writing.
func (m *MemStore) unlistLocked(c *chunk) {
	if c.listedAt == 0 {
		return
	}
	last := m.halfDead[len(m.halfDead)-1]
	m.halfDead[c.listedAt-1], last.listedAt = last, c.listedAt
	m.halfDead[len(m.halfDead)-1] = nil
	m.halfDead = m.halfDead[:len(m.halfDead)-1]
	c.listedAt = 0
}

// listedCompactableLocked returns a listed chunk at least half dead that
// compaction may move records out of now, if there is one. The active chunk,
// listed for its unwritten tail, and chunks still being written to stay
// listed until they can be judged; a former active chunk found less than half
// dead once its tail was written goes off the list. m.mu must be held for
// writing.
func (m *MemStore) listedCompactableLocked() *chunk {
	active := m.activeChunk()
	for i := len(m.halfDead) - 1; i >= 0; i-- {
		c := m.halfDead[i]
		switch {
		case !m.compactable(c, active):
		case c.halfDead():
			return c
		default:
			m.unlistLocked(c) // puts an entry already judged at i
		}
	}
	return nil
}

// compactable reports whether compaction may move records out of c, given
// the active chunk: not out of the active chunk, nor out of one with a record
// still to be published, whose bytes may still be being written.
func (m *MemStore) compactable(c, active *chunk) bool {
	return c != active && c.pending.Load() == 0
}

// activeChunk returns the chunk records are appended to now. A chunk that
// is not active now never will be again, and its pending count only falls,
// so under m.mu what is found compactable stays so.
func (m *MemStore) activeChunk() *chunk {
	return m.tail.active.Load()
}

// halfDeadLocked returns the chunks with ids from to from+n-1 that are at
// least half dead and that compaction may move records out of: not the
// active chunk, and none with a record still to be published, whose bytes
// may still be being written. m.mu must be held, for reading at least.
func (m *MemStore) halfDeadLocked(from, n uint32) []*chunk {
	active := m.activeChunk()
	var found []*chunk
	for id := from; id < from+n && id <= m.chunkIDs; id++ {
		if c := m.chunkAt(id); c != nil && c.halfDead() && m.compactable(c, active) {
			found = append(found, c)
		}
	}
	return found
}

// compactLocked copies c's live records into the active chunk, points the
// index at the copies, and drops c. Records whose deadline is at or before
// removeBy are removed instead, counted as expired or evicted: expired
// sessions, and under a cap those as near their expiry as the one being
// evicted. c must be compactable. m.mu must be held for writing.
func (m *MemStore) compactLocked(c *chunk, removeBy time.Duration) {
	now := m.now()
	for off, used := 0, int(c.used.Load()); off < used && c.live > 0; {
		token, _, size := splitRecord(c.buf[off:])
		at := c.location(off, size)
		h := m.hashBytes(token)
		if i, ok := m.slotAtLocked(h, at); ok {
			s := m.slotLocked(i)
			c.live -= size
			m.recordBytes -= int64(size)
			if s.deadline <= removeBy {
				m.noteRemovalLocked(at)
				m.clearSlotLocked(i)
				m.countRemovalLocked(s, now)
			} else {
				r := m.reserve(size)
				copy(r.buf, c.buf[off:off+size])
				m.placeLocked(r)
				m.setLocked(i, r.slot(s.deadline))
				m.recordBytes += int64(size)
			}
		}
		off += size
	}
	m.dropLocked(c)
	m.counters.compactions++
}

// placeLocked publishes reservation r's record, written by now, in its chunk:
// it registers the chunk and counts the record as live there. The caller
// points the index at it. m.mu must be held for writing.
func (m *MemStore) placeLocked(r reservation) {
	m.registerLocked(r.c)
	r.c.live += len(r.buf)
	r.c.pending.Add(-1)
}

// discardLocked gives up reservation r: its bytes stay, dead. m.mu must be
// held for writing.
func (m *MemStore) discardLocked(r reservation) {
	r.c.pending.Add(-1)
	switch {
	case r.c.id == 0: // never registered: counted nowhere, collected with the last reference
	case r.c.live == 0:
		m.dropIfIdleLocked(r.c)
	default:
		m.noteDeadLocked(r.c)
	}
}

// compactWhileTooDeadLocked compacts up to two chunks at least half dead in
// a store without a cap whose dead space is past its bound: the live
// records' size plus 16 chunks. Past that bound the average chunk is more
// than half dead, so one is, and each compaction frees at least half a
// chunk, less the 1/16 it may waste at the end of the active chunk: far more
// than the one record a Commit or Delete leaves dead. So the chunks hold at
// most twice the live records and 1 MiB after every Commit and Delete, but
// for a while after the janitor, or a burst of Deletes, leaves many chunks
// half dead at once: then the janitor's paced compaction, and each Commit
// and Delete two chunks at a time, bring the store back within it, so that
// no lock hold grows with the store. Under a cap, making room compacts
// instead. m.mu must be held for writing.
func (m *MemStore) compactWhileTooDeadLocked() {
	for range 2 {
		if m.maxBytes > 0 || m.chunkBytes-m.recordBytes <= m.recordBytes+deadSlackChunks*int64(m.chunkSize) {
			return
		}
		if !m.compactHalfDeadLocked(m.now()) {
			return // only chunks still being written to: a later call tries again
		}
	}
}

// deadSlackChunks is how many chunks' worth of dead space a store without a
// cap may hold whatever its size, so that a small store never compacts.
const deadSlackChunks = 16

// chunkSizeFor returns the size of the shared chunks of a store capped at
// maxBytes (0: no cap). Under a cap, a chunk is at most 1/64 of it, so that
// the room kept for the active chunk's unwritten tail (see makeRoomLocked)
// is a small part of the cap; it is rounded up to the allocator's size
// class, which a chunk takes whatever its length.
func chunkSizeFor(maxBytes int64) int {
	if maxBytes > 0 && maxBytes/64 < maxChunkSize {
		return sizeClass(max(int(maxBytes/64), 1)) // what a chunk of that size really takes
	}
	return maxChunkSize
}
