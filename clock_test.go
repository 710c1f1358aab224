// SPDX-License-Identifier: MIT

package memstore_test

import (
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/golangcollege/memstore"
)

// TestFindIsExactAtTheDeadline commits sessions whose deadlines lie from a
// millisecond to an hour ahead, some within the second in which Find reads
// the clock and some beyond it, and looks each up a nanosecond before its
// deadline and at it, on synctest's clock: found, then not. It does so on a
// store whose cached reading is refreshed, and on one closed, whose Finds
// read the clock every time.
func TestFindIsExactAtTheDeadline(t *testing.T) {
	lifetimes := []time.Duration{time.Millisecond, 150 * time.Millisecond, 999 * time.Millisecond,
		time.Second, time.Second + time.Millisecond, 1500 * time.Millisecond, 5 * time.Second, time.Hour}
	for _, closed := range []bool{false, true} {
		for _, lifetime := range lifetimes {
			t.Run(fmt.Sprintf("closed=%v/%v", closed, lifetime), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					m := memstore.New(0)
					defer m.Close()
					time.Sleep(2*time.Second + 30*time.Millisecond) // a reading taken, and the store's clock well past its start
					if closed {
						m.Close()
					}
					expiry := time.Now().Add(lifetime)
					mustCommit(t, m, "tok", []byte("data"), expiry)
					time.Sleep(time.Until(expiry) - time.Nanosecond)
					mustFind(t, m, "tok", []byte("data"))
					time.Sleep(time.Nanosecond)
					mustMiss(t, m, "tok")
				})
			})
		}
	}
}

// TestFindIsExactOnTheRealClock polls sessions about to expire on the real
// clock, with Finds in a tight loop: none may find a session once the clock
// read before it began had reached the deadline.
func TestFindIsExactOnTheRealClock(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	for _, lifetime := range []time.Duration{2 * time.Millisecond, 20 * time.Millisecond, 300 * time.Millisecond} {
		expiry := time.Now().Add(lifetime) // with a monotonic reading, as the store's own deadline has
		mustCommit(t, m, "tok", []byte("data"), expiry)
		for {
			before := time.Now()
			_, found, _ := m.Find("tok")
			if found && !before.Before(expiry) {
				t.Fatalf("Find at %v past the deadline found the session", before.Sub(expiry))
			}
			if !found {
				if after := time.Now(); after.Before(expiry) {
					t.Fatalf("Find missed the session %v before its deadline", expiry.Sub(after))
				}
				break
			}
		}
	}
}

// TestForgottenStoreIsCollected drops a store without closing it: the timer
// that refreshes its clock must not keep it alive.
func TestForgottenStoreIsCollected(t *testing.T) {
	t.Parallel()
	m := memstore.New(0)
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	w := weak.Make(m)
	m = nil
	eventually(t, "collected", func() bool {
		runtime.GC()
		return w.Value() == nil
	})
}
