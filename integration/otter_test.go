// SPDX-License-Identifier: MIT

package integration

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
)

// otterStore is github.com/maypok86/otter/v2, the fastest general Go cache,
// wrapped as an scs store the way a user chasing speed might wrap it: one
// Cache from token to session, each session's own expiry handed to otter
// through its ExpiryCalculator, and otter's snapshot functions as WriteFile
// and ReadFile. It keeps the caller's slice, as scs's memstore does.
type otterStore struct {
	c     *otter.Cache[string, otterSession]
	clock *otterClock
}

// otterSession is what the cache holds for a token. Its fields are exported
// for the gob encoding of otter's snapshots.
type otterSession struct {
	Data     []byte
	Deadline int64 // the expiry, in Unix nanoseconds
}

// newOtterStore returns an empty otterStore whose periodic clean-up, otter's
// janitor, runs every cleanupInterval (0: never). otter runs its clean-up
// every second and offers no other interval; the adapter sets it through the
// clock, as the other stores' janitors are set, so that the benchmarks can
// tell when a clean-up runs. otter also removes expired entries during the
// upkeep that follows writes, and now and then reads, whatever the interval.
func newOtterStore(cleanupInterval time.Duration) *otterStore {
	clock := newOtterClock(cleanupInterval)
	return &otterStore{
		clock: clock,
		c: otter.Must(&otter.Options[string, otterSession]{
			Clock: clock,
			ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, otterSession]) time.Duration {
				// A non-positive duration would keep an overwritten session's
				// old deadline: a session whose deadline has passed expires now.
				return max(time.Duration(e.Value.Deadline-clock.NowNano()), 1)
			}),
		}),
	}
}

// Find returns the data held for token; otter never returns an expired entry.
func (s *otterStore) Find(token string) ([]byte, bool, error) {
	v, found := s.c.GetIfPresent(token)
	return v.Data, found, nil
}

// Commit holds b under token until expiry. An expiry that has passed removes
// the session, as scs expects.
func (s *otterStore) Commit(token string, b []byte, expiry time.Time) error {
	deadline := expiry.UnixNano()
	if deadline <= s.clock.NowNano() {
		s.c.Invalidate(token)
		return nil
	}
	s.c.Set(token, otterSession{Data: b, Deadline: deadline})
	return nil
}

// Delete removes token.
func (s *otterStore) Delete(token string) error {
	s.c.Invalidate(token)
	return nil
}

// All returns the live sessions, for scs's IterableStore.
func (s *otterStore) All() (map[string][]byte, error) {
	all := make(map[string][]byte)
	for token, v := range s.c.All() {
		all[token] = v.Data
	}
	return all, nil
}

// WriteFile saves the sessions to the file name, with otter's SaveCacheToFile.
func (s *otterStore) WriteFile(name string) error { return otter.SaveCacheToFile(s.c, name) }

// ReadFile adds the sessions saved in the file name, with otter's
// LoadCacheFromFile, which skips those that have expired since.
func (s *otterStore) ReadFile(name string) error { return otter.LoadCacheFromFile(s.c, name) }

// close stops the periodic clean-up.
func (s *otterStore) close() {
	s.c.StopAllGoroutines()
	s.clock.stop()
}

// otterClock is otter's default clock, Unix time read through the monotonic
// clock, with the periodic clean-up ticking every interval instead of every
// second. otter's snapshots need a clock counting from the Unix epoch.
type otterClock struct {
	start     time.Time
	startNano int64
	interval  time.Duration // 0: no ticks

	mu     sync.Mutex
	ticker *time.Ticker // the ticks otter reads; nil until it asks
}

func newOtterClock(interval time.Duration) *otterClock {
	start := time.Now()
	return &otterClock{start: start, startNano: start.UnixNano(), interval: interval}
}

// NowNano returns the time in Unix nanoseconds.
func (c *otterClock) NowNano() int64 { return c.startNano + int64(time.Since(c.start)) }

// Tick returns the ticks of the periodic clean-up, every c.interval whatever
// otter asks for, or nil (no clean-ups) for an interval of 0.
func (c *otterClock) Tick(time.Duration) <-chan time.Time {
	if c.interval <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ticker == nil {
		c.ticker = time.NewTicker(c.interval)
	}
	return c.ticker.C
}

// stop stops the ticks.
func (c *otterClock) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ticker != nil {
		c.ticker.Stop()
	}
}

// TestOtterStoreFile: the adapter's WriteFile and ReadFile carry sessions,
// with their expiry, into another store.
func TestOtterStoreFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "sessions")
	src := newOtterStore(0)
	defer src.close()
	src.Commit("long", []byte("stays"), time.Now().Add(time.Hour))
	src.Commit("short", []byte("goes"), time.Now().Add(300*time.Millisecond))
	if err := src.WriteFile(name); err != nil {
		t.Fatal(err)
	}

	dst := newOtterStore(0)
	defer dst.close()
	if err := dst.ReadFile(name); err != nil {
		t.Fatal(err)
	}
	if got, found, _ := dst.Find("long"); !found || string(got) != "stays" {
		t.Fatalf("after ReadFile, Find(long) = %q, %v; want stays, true", got, found)
	}
	waitFor(t, 10*time.Second, "the restored short session expired", func() bool {
		_, found, _ := dst.Find("short")
		return !found
	})
	if _, found, _ := dst.Find("long"); !found {
		t.Fatal("the restored long session expired with the short one")
	}
}
