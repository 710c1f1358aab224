// SPDX-License-Identifier: MIT

package memstore

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// clock keeps a recent reading of a store's monotonic clock, so that Find
// need not read the clock itself. A clock read costs more than the rest of
// a lookup of a cached session, and waits for the lookup's cache misses
// before it, so that lookups in a row cannot overlap.
//
// A timer refreshes the reading every refreshEvery. A reading is always in
// the past, so a deadline that lies more than trustedFor beyond it lies
// beyond now, as long as the timer has run within trustedFor: Find trusts it
// without reading the clock, and reads the clock for any deadline nearer.
// So a session is never found at or after its deadline, unless the whole
// process is held up (stopped with SIGSTOP, a paused virtual machine) for
// more than trustedFor, and then only in the moment after it resumes,
// before the timer has run.
//
// The timer holds the clock, not the store, so that a store its owner
// forgot to close can still be collected: a cleanup attached to the store
// then stops the timer, as Close does.
type clock struct {
	epoch  time.Time    // the store's epoch: deadlines count from it
	recent atomic.Int64 // the time since epoch at the last refresh, or noReading once stopped

	mu      sync.Mutex  // guards the fields below, so that stop and a refresh do not cross
	timer   *time.Timer // refreshes recent
	stopped bool        // no more refreshes: the timer fires once more, if set, and is not set again
}

const (
	// refreshEvery is how often the timer refreshes the reading.
	refreshEvery = 100 * time.Millisecond
	// trustedFor is how far beyond the reading a deadline must lie for
	// Find to trust that it has not passed without reading the clock: ten
	// refreshes, so that a timer held up by a busy machine does not matter.
	trustedFor = time.Second
	// noReading makes every deadline too near for trust: a stopped clock
	// reads the real one every time.
	noReading = math.MaxInt64 - int64(trustedFor)
)

// startClock returns a clock for a store whose epoch is epoch, refreshed
// until stop.
func startClock(epoch time.Time) *clock {
	c := &clock{epoch: epoch}
	c.recent.Store(int64(time.Since(epoch)))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = time.AfterFunc(refreshEvery, c.refresh) // which may fire before the assignment: it waits for mu
	return c
}

// refresh takes a new reading, and sets the timer for the next.
func (c *clock) refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.recent.Store(int64(time.Since(c.epoch)))
	c.timer.Reset(refreshEvery)
}

// stop stops the refreshes: from then on every check reads the clock. It is
// safe to call more than once, from any goroutine. It leaves the timer to
// fire once more rather than stop it: a timer made in a testing/synctest
// bubble may be stopped only from inside it, and the cleanup that calls
// stop for a store never closed runs outside.
func (c *clock) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	c.recent.Store(noReading)
}

// passed reports whether deadline is at or before now, reading the clock
// only for a deadline near the last reading.
func (c *clock) passed(deadline time.Duration) bool {
	if int64(deadline) > c.recent.Load()+int64(trustedFor) {
		return false
	}
	return deadline <= time.Since(c.epoch)
}
