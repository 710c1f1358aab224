// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golangcollege/memstore"
)

func TestJanitorRemovesExpiredSessions(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := memstore.New(5 * time.Millisecond)
		defer m.Close()
		const n = 5000 // many batches
		for i := range n {
			expiry := inAnHour()
			if i%2 == 0 {
				expiry = time.Now().Add(shortLife)
			}
			mustCommit(t, m, fmt.Sprint(i), []byte(fmt.Sprint(i)), expiry)
		}
		eventually(t, "swept down to the live half", func() bool { return m.Len() == n/2 })
		for i := 1; i < n; i += 2 {
			mustFind(t, m, fmt.Sprint(i), []byte(fmt.Sprint(i)))
		}
	})
}

// TestJanitorKeepsSessionsCommittedDuringASweep runs on the real clock: it
// commits in a loop that never blocks until the sweep is done, and in a
// synctest bubble the clock moves only when every goroutine blocks, so the
// sessions would never expire.
func TestJanitorKeepsSessionsCommittedDuringASweep(t *testing.T) {
	t.Parallel()
	m := memstore.New(time.Millisecond)
	defer m.Close()
	for i := range sized(5_000, 20_000) {
		mustCommit(t, m, fmt.Sprint("old", i), nil, time.Now().Add(shortLife))
	}
	// Keep committing live sessions while the janitor sweeps the old ones away.
	written := 0
	for m.Len() > written {
		mustCommit(t, m, fmt.Sprint("new", written), []byte("x"), inAnHour())
		written++
		if written > 1_000_000 {
			t.Fatal("the janitor never swept the expired sessions")
		}
	}
	eventually(t, "swept", func() bool { return m.Len() == written })
	for i := range written {
		mustFind(t, m, fmt.Sprint("new", i), []byte("x"))
	}
}

// janitors counts the goroutines running a store's janitor.
func janitors() int {
	buf := make([]byte, 1<<20)
	return bytes.Count(buf[:runtime.Stack(buf, true)], []byte("memstore.(*janitor).run("))
}

// janitorsBack polls, collecting garbage, until want janitors are running.
func janitorsBack(t *testing.T, want int) {
	t.Helper()
	eventually(t, fmt.Sprintf("down to %d janitors", want), func() bool {
		runtime.GC()
		return janitors() == want
	})
}

func TestNewStartsOneJanitorOnlyForAPositiveInterval(t *testing.T) {
	janitorsBack(t, 0) // those of other tests' forgotten stores included
	synctest.Test(t, func(t *testing.T) {
		for _, d := range []time.Duration{0, -time.Second} {
			m := memstore.New(d)
			synctest.Wait() // a janitor started would be running or blocked by now
			if n := janitors(); n != 0 {
				t.Errorf("New(%v) started %d janitors; want none", d, n)
			}
			m.Close()
		}
		m := memstore.New(time.Hour)
		synctest.Wait()
		if n := janitors(); n != 1 {
			t.Errorf("New(time.Hour) started %d janitors; want exactly one", n)
		}
		m.Close()
		synctest.Wait() // its goroutine has exited
		if n := janitors(); n != 0 {
			t.Errorf("%d janitors left after Close; want none", n)
		}
	})
}

func TestCloseIsSafeTwiceAndConcurrently(t *testing.T) {
	janitorsBack(t, 0)
	synctest.Test(t, func(t *testing.T) {
		for _, interval := range []time.Duration{0, time.Millisecond} {
			m := memstore.New(interval)
			var wg sync.WaitGroup
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := m.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				}()
			}
			wg.Wait()
			synctest.Wait() // the janitor, if any, has exited
			if n := janitors(); n != 0 {
				t.Fatalf("%d janitors left after Close; want none", n)
			}
			if err := m.Close(); err != nil {
				t.Fatalf("Close again: %v", err)
			}
		}
	})
}

// TestForgottenStoreStopsItsJanitor runs on the real clock: the cleanup that
// stops a forgotten store's janitor runs outside any synctest bubble, where it
// may not touch a janitor started inside one.
func TestForgottenStoreStopsItsJanitor(t *testing.T) {
	janitorsBack(t, 0)
	func() {
		for range 10 {
			// An hour between sweeps: only the cleanup attached to the store
			// can stop these janitors in time.
			m := memstore.New(time.Hour)
			mustCommit(t, m, "tok", []byte("data"), inAnHour())
		}
	}()
	janitorsBack(t, 0)
}

// TestCloseCutsASweepShort runs on the real clock: the sweep paces itself by
// the real time it holds the lock, which measures zero on a synctest bubble's
// clock, so there the sweep would finish before Close could cut it short.
func TestCloseCutsASweepShort(t *testing.T) {
	t.Parallel()
	m := memstore.New(time.Millisecond)
	expiring := sized(50_000, 200_000) // a paced pass over them takes a second or more
	for i := range expiring {
		mustCommit(t, m, fmt.Sprint(i), nil, time.Now().Add(shortLife))
	}
	eventually(t, "a sweep under way", func() bool { return m.Len() < expiring })
	m.Close()
	left := m.Len()
	if left == 0 {
		t.Fatal("Close returned after the sweep had removed every expired session; want it cut short")
	}
	time.Sleep(20 * time.Millisecond) // twenty janitor intervals
	if n := m.Len(); n != left {
		t.Fatalf("Len went from %d to %d after Close; want no more removals", left, n)
	}
}

// TestJanitorKeepsSessionsRenewedDuringASweep runs on the real clock: the
// renewals must land while a sweep is under way, which its real-time pacing
// makes long (see TestCloseCutsASweepShort).
func TestJanitorKeepsSessionsRenewedDuringASweep(t *testing.T) {
	t.Parallel()
	m := memstore.New(time.Millisecond)
	defer m.Close()
	toks := make([]string, sized(10_000, 100_000)) // a pass long enough to renew sessions during it
	for i := range toks {
		toks[i] = fmt.Sprint(i)
		mustCommit(t, m, toks[i], []byte("old"), time.Now().Add(shortLife))
	}
	eventually(t, "expired", func() bool { _, found, _ := m.Find(toks[len(toks)-1]); return !found })
	// Renew them all while the janitor removes them: a sweep that collected a
	// token before its renewal must not remove it after.
	for _, tok := range toks {
		mustCommit(t, m, tok, []byte("renewed"), inAnHour())
	}
	renewed := m.Stats().Sweeps
	eventually(t, "two more sweeps", func() bool { return m.Stats().Sweeps >= renewed+2 })
	for _, tok := range toks {
		mustFind(t, m, tok, []byte("renewed"))
	}
}
