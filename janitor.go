// SPDX-License-Identifier: MIT

package memstore

import (
	"runtime"
	"sync"
	"time"
	"weak"
)

// janitor is the background goroutine that removes expired sessions.
//
// It holds only a weak pointer to its store between sweeps, so a store that
// its owner forgot to Close can still be garbage-collected; a cleanup
// attached to the store then stops the goroutine.
type janitor struct {
	stopOnce sync.Once
	done     chan struct{} // closed once, by stop, to ask the goroutine to return
	exited   chan struct{} // closed by the goroutine as it returns
}

// startJanitor starts m's janitor, sweeping every interval.
func startJanitor(m *MemStore, interval time.Duration) *janitor {
	j := &janitor{done: make(chan struct{}), exited: make(chan struct{})}
	go j.run(weak.Make(m), interval)
	runtime.AddCleanup(m, (*janitor).stop, j)
	return j
}

// run sweeps store every interval until stopped or until store is gone.
func (j *janitor) run(store weak.Pointer[MemStore], interval time.Duration) {
	defer close(j.exited)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-j.done:
			return
		case <-ticker.C:
			m := store.Value() // a strong pointer for this sweep only
			if m == nil {
				return
			}
			m.sweep(j.done)
		}
	}
}

// stop asks the goroutine to return, without waiting for it. It is safe to
// call any number of times, from any goroutine.
func (j *janitor) stop() {
	j.stopOnce.Do(func() { close(j.done) })
}

// removalPacing is how many times longer than it held the write lock for a
// batch of removals the janitor then leaves the lock alone. A burst of
// expiries thus holds the write lock for about 1/(removalPacing+1) of the
// time (more only when a batch outlasts maxRemovalPause/removalPacing), and
// few requests ever meet it; a pass over many
// expired sessions takes that many times longer, in the background.
const removalPacing = 40

// maxRemovalPause bounds that pause, so that a batch that held the lock long
// only because the machine stalled does not park the sweep for seconds.
const maxRemovalPause = 100 * time.Millisecond

// sweep removes every session that had expired when it started, and every
// token remembered as deleted whose deadline had passed, then compacts the
// chunks that are at least half dead, unless stop is closed first.
//
// It finds expired sessions under the read lock, which requests share, and
// takes the write lock only to remove them, in batches of batchSize to
// 2*batchSize-1, pausing after each (see removalPacing): however large the
// store, a request waits behind one batch at most. A pass that finds nothing
// expired holds up writers by one read batch at most, and so Find only when
// it queues behind such a writer. Compaction takes the write lock for one
// chunk at a time, and pauses likewise.
func (m *MemStore) sweep(stop <-chan struct{}) {
	start, sweepStart := time.Now(), m.now()
	expired := make([]candidate, 0, 2*batchSize) // at most batchSize carried over, plus one batch's worth
	var longestWriteHold time.Duration
	locked := func(f func()) (held time.Duration) {
		m.mu.Lock()
		heldSince := time.Now()
		f()
		held = time.Since(heldSince)
		m.mu.Unlock()
		longestWriteHold = max(longestWriteHold, held)
		return held
	}
	removeExpired := func() {
		for _, c := range expired {
			// Commit may have renewed the session, or compaction moved it,
			// since the walk saw it.
			if i, ok := m.slotAtLocked(c.hash, c.slot.at); ok && m.slotLocked(i).deadline <= sweepStart {
				m.removeLocked(i)
				m.counters.expired++
			}
		}
		expired = expired[:0]
	}

	longestReadHold := m.walk(m.mu.RLocker(), func(h uint64, s slot) {
		if s.deadline <= sweepStart {
			expired = append(expired, candidate{hash: h, slot: s})
		}
	}, func() bool {
		if len(expired) < batchSize {
			return !stopped(stop)
		}
		return pause(min(removalPacing*locked(removeExpired), maxRemovalPause), stop)
	})
	if stopped(stop) {
		return // Close cut the pass short: it is not counted as one
	}
	if len(expired) > 0 {
		locked(removeExpired)
	}
	for from, done := uint64(0), false; !done; { // the tokens remembered as deleted, expired by now
		held := locked(func() { from, done = m.sweepDeletedLocked(from, sweepStart) })
		if !done && !pause(min(removalPacing*held, maxRemovalPause), stop) {
			return
		}
	}

	for from := uint32(1); ; from += batchSize {
		m.mu.RLock()
		halfDead, more := m.halfDeadLocked(from, batchSize), from+batchSize <= m.chunkIDs
		m.mu.RUnlock()
		for _, c := range halfDead {
			held := locked(func() {
				if c.id != 0 { // not dropped meanwhile; still half dead, for it cannot come back to life
					m.compactLocked(c, sweepStart)
					m.makeRoomLocked(reservation{}, false) // the copies may have started a chunk
				}
			})
			if !pause(min(removalPacing*held, maxRemovalPause), stop) {
				return
			}
		}
		if !more {
			break
		}
	}

	m.mu.Lock()
	m.counters.sweeps++
	m.counters.lastSweep = time.Since(start)
	m.counters.lastSweepLongestHold = max(longestReadHold, longestWriteHold)
	m.mu.Unlock()
}

// stopped reports whether stop is closed.
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// pause waits for d and reports true, or reports false as soon as stop is
// closed.
func pause(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}
