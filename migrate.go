// SPDX-License-Identifier: MIT

package memstore

import (
	"fmt"
	"iter"
	"time"
)

// Session is one session as Sessions yields it.
//
// Data is the store's own bytes, not a copy, as Find returns them: they must
// not be modified, and stay valid for as long as they are kept. Expiry is the
// session's deadline, kept on the store's monotonic clock, turned into
// wall-clock time as the two clocks stood when its batch was yielded; it
// carries no monotonic reading.
type Session struct {
	Token  string
	Data   []byte
	Expiry time.Time
}

// Sessions returns an iterator over every session that was unexpired when
// the iterator reached it, with its data and expiry, in no particular order.
// It is the way to move the sessions to another store: see CopyTo.
//
// The iterator walks the store a batch at a time, taking references to a
// batch under the read lock and releasing it before yielding them, so that
// requests wait behind one batch at most, whatever the store's size, and the
// loop's body may take its time or call the store itself. It is therefore not
// an atomic snapshot, as All is not: a session committed or deleted during
// the loop may or may not be yielded, but no token is yielded twice. With no
// writes during the loop, every unexpired session is yielded.
//
// Breaking out of the loop stops the walk. Sessions is safe for concurrent
// use, and works after Close.
func (m *MemStore) Sessions() iter.Seq[Session] {
	return func(yield func(Session) bool) {
		var (
			batch = make([]session, 0, batchSize)
			now   = m.now()
			done  bool
		)
		// flush yields the batch, outside the lock, and reports whether
		// the loop wants more.
		flush := func() bool {
			wall := time.Now() // one clock read for the batch's expiries
			for _, s := range batch {
				if !yield(Session{Token: string(s.token), Data: s.data, Expiry: m.expiry(s.deadline, wall)}) {
					return false
				}
			}
			clear(batch) // lets go of the chunks of sessions that were deleted since
			batch = batch[:0]
			return true
		}
		m.walk(m.mu.RLocker(), func(_ uint64, s slot) {
			if s.deadline > now {
				token, data := m.chunkAt(s.at.chunk).record(s.at)
				batch = append(batch, session{token, data, s.deadline})
			}
		}, func() bool {
			if !flush() {
				done = true
				return false
			}
			now = m.now() // for the next batch, which is collected after the yields
			return true
		})
		if !done {
			flush()
		}
	}
}

// Committer is what CopyTo needs of the target store: scs's Store has it, as
// do scs's CtxStore and this store.
type Committer interface {
	Commit(token string, b []byte, expiry time.Time) error
}

// CopyTo commits every unexpired session to dst, with its data and expiry,
// and returns how many commits it made: the number of sessions, when no
// writes reach m during the copy (see Sessions). Sessions whose expiry passes while the
// copy runs are skipped. dst must not modify the slices it is given (scs's
// stores do not).
//
// On the first error from dst CopyTo stops, returning how many sessions were
// committed before it and an error that wraps both ErrCopyIncomplete and
// dst's error, and says that count. A session is in dst once dst's Commit has
// returned nil; CopyTo may be run again, since a commit of the same session
// replaces it.
//
// CopyTo changes nothing in m. It walks m as Sessions does, so it may run
// while m serves requests; then it copies what it meets, and a session written
// during the copy may or may not be copied: stop writes to m for a complete
// copy. It works after Close.
func (m *MemStore) CopyTo(dst Committer) (copied int, err error) {
	for s := range m.Sessions() {
		if !s.Expiry.After(time.Now()) {
			continue // expired while earlier sessions were being committed
		}
		if err := dst.Commit(s.Token, s.Data, s.Expiry); err != nil {
			return copied, fmt.Errorf("%w: %d sessions copied, then the target store failed: %w", ErrCopyIncomplete, copied, err)
		}
		copied++
	}
	return copied, nil
}
