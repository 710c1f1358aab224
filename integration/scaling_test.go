// SPDX-License-Identifier: MIT

package integration

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golangcollege/memstore/internal/findwaits"
)

// BenchmarkGCTax (gctax_test.go) and BenchmarkScaling measure the in-process
// stores of the stores table holding 1,000 to 10,000,000 sessions, as sub-benchmarks named
// store=NAME/n=SESSIONS. Sizes above 10,000 run only when asked for, with
// -max-sessions, so that CI's one-shot run of every benchmark stays quick;
// a size the machine has not the memory for is skipped with a message. The
// run that docs/scaling.md gives, six rounds up to 1,000,000 sessions,
// whose output cmd/charts turns into charts and a table:
//
//	go test -run '^$' -bench 'GCTax|Scaling' -benchtime 1x -count 6 -timeout 0 . -max-sessions 1000000 > ../docs/results/scaling.txt

// maxSessions is the largest number of sessions the scaling benchmarks hold.
var maxSessions = flag.Int("max-sessions", 10_000,
	"the largest number of sessions BenchmarkGCTax and BenchmarkScaling hold: 1000 to 10000000")

// scalingSizes are the numbers of sessions the scaling benchmarks hold, up to
// -max-sessions.
var scalingSizes = []int{1_000, 10_000, 100_000, 1_000_000, 10_000_000}

// bytesPerSession is the memory a size needs per session to run: the largest
// store's heap per session (about 400 B) twice over, for the collector's
// headroom, and some to spare.
const bytesPerSession = 1024

// forEachSize runs measure for every size up to -max-sessions and every store,
// as sub-benchmarks named store=NAME/n=SESSIONS, the stores side by side at
// each size so that a machine whose load drifts disturbs them alike.
func forEachSize(b *testing.B, measure func(b *testing.B, c storeKind, n int)) {
	for _, n := range scalingSizes {
		if n > *maxSessions {
			continue
		}
		for _, c := range inProcessStores() {
			b.Run(fmt.Sprintf("store=%s/n=%d", c.name, n), func(b *testing.B) {
				if avail, ok := memAvailable(); ok && avail < uint64(n)*bytesPerSession {
					b.Skipf("holding %d sessions takes about %d MiB; only %d MiB is available", n, n*bytesPerSession>>20, avail>>20)
				}
				measure(b, c, n)
			})
		}
	}
}

// memAvailable returns the memory available to start new work, from Linux's
// /proc/meminfo; ok is false where it cannot tell.
func memAvailable() (bytes uint64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if kB, found := strings.CutPrefix(sc.Text(), "MemAvailable:"); found {
			n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(kB, "kB")), 10, 64)
			return n << 10, err == nil
		}
	}
	return 0, false
}

// sessionData is the data of every session the scaling benchmarks commit:
// scs's gob encoding of a deadline, a user ID and a theme, 157 bytes, as in
// the storetest kit's workloads.
var sessionData = encode(map[string]any{"userID": 1234567, "theme": "dark"})

// freshData returns a new copy of sessionData with no spare capacity, as
// each session's data comes in its own slice from scs.
func freshData() []byte {
	b := make([]byte, len(sessionData))
	copy(b, sessionData)
	return b
}

// fillSessions commits token(from) to token(to-1) to s, each with fresh
// data, expiring at expiry. Nothing keeps the tokens but the store.
func fillSessions(b *testing.B, s store, from, to int, expiry time.Time) {
	b.Helper()
	for i := from; i < to; i++ {
		if err := s.Commit(token(i), freshData(), expiry); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScaling measures each store holding n sessions of sessionData
// under 43-byte tokens, all committed fresh, as the figures of the scaling
// table (BenchmarkGCTax gives its GC tax). Metrics:
//
//   - heap-B/session: how much the live heap grew per session committed,
//     after runtime.GC.
//   - find-hit-ns: a Find of a session drawn at random, from one goroutine.
//   - mixed-ns: parallel-mixed-90-10 over sessions drawn at random: on every
//     core, nine Finds for one Commit of fresh data; the wall time per
//     operation.
//   - write-ms, read-ms: WriteFile of the whole store, and ReadFile of that
//     file into an empty store, for the stores that have them.
//   - sweep-ms: how long after half the sessions expired the store's janitor
//     had removed them (see measureSweep).
//   - max-µs-sweep, p99.99-µs-sweep: how long Finds of live sessions,
//     called in a loop meanwhile and over a window as long for every store
//     (window-s), waited (findwaits.Measure).
//
// Run it with -benchtime 1x, as BenchmarkGCTax.
func BenchmarkScaling(b *testing.B) {
	forEachSize(b, func(b *testing.B, c storeKind, n int) {
		b.ReportMetric(0, "ns/op") // the time of a whole measurement means nothing
		for range b.N {
			measureFull(b, c, n)
			measureSweep(b, c, n)
		}
	})
}

// findHitTime is how long measureFull calls Find for.
const findHitTime = 200 * time.Millisecond

// measureFull measures the heap, Find and, for a store that has them,
// WriteFile and ReadFile, of a store of kind c holding n sessions.
func measureFull(b *testing.B, c storeKind, n int) {
	goroutines := runtime.NumGoroutine()
	before := liveHeap()
	s, _, closeStore := c.inProcess(b, 0)
	fillSessions(b, s, 0, n, time.Now().Add(time.Hour))
	b.ReportMetric(float64(int64(liveHeap())-int64(before))/float64(n), "heap-B/session")
	b.ReportMetric(float64(findHit(b, s, n))/float64(time.Nanosecond), "find-hit-ns")
	b.ReportMetric(float64(mixed(b, s, n))/float64(time.Nanosecond), "mixed-ns")

	files, ok := s.(fileStore)
	if !ok {
		closeStore()
		awaitDropped(b, c, goroutines)
		return
	}
	name := filepath.Join(b.TempDir(), "sessions")
	start := time.Now()
	if err := files.WriteFile(name); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start))/float64(time.Millisecond), "write-ms")
	closeStore()
	awaitDropped(b, c, goroutines) // only one full store at a time

	restored, held, closeStore := c.inProcess(b, 0)
	start = time.Now()
	if err := restored.(fileStore).ReadFile(name); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start))/float64(time.Millisecond), "read-ms")
	if got := held(); got != n {
		b.Fatalf("ReadFile restored %d sessions, want %d", got, n)
	}
	closeStore()
	awaitDropped(b, c, goroutines)
}

// fileStore is a store that saves its sessions to a file and restores them.
type fileStore interface {
	WriteFile(name string) error
	ReadFile(name string) error
}

// liveHeap collects the heap and returns the bytes of live objects.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// findHit returns how long a Find of a live session drawn at random from s,
// which holds token(0) to token(n-1), takes on average.
func findHit(b *testing.B, s store, n int) time.Duration {
	probe := make([]string, min(n, 1<<16))
	for i := range probe {
		probe[i] = token(rand.IntN(n))
	}
	finds := 0
	start := time.Now()
	for time.Since(start) < findHitTime {
		for _, tok := range probe {
			if _, found, err := s.Find(tok); err != nil || !found {
				b.Fatalf("Find of a live session = found %v, error %v; want true, nil", found, err)
			}
		}
		finds += len(probe)
	}
	return time.Since(start) / time.Duration(finds)
}

// mixed returns the wall time per operation of GOMAXPROCS goroutines each
// calling, for findHitTime, Find nine times for one Commit of fresh data, on
// sessions of s, which holds token(0) to token(n-1), drawn at random. The
// Commits overwrite, so that the store keeps n sessions.
func mixed(b *testing.B, s store, n int) time.Duration {
	expiry := time.Now().Add(time.Hour)
	workers := runtime.GOMAXPROCS(0)
	ops := make([]int, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(n)))
			probe := make([]string, min(n, 1<<14))
			for i := range probe {
				probe[i] = token(rng.IntN(n))
			}
			data := freshData()
			for time.Since(start) < findHitTime {
				for i, tok := range probe {
					if i%10 == 0 {
						if err := s.Commit(tok, data, expiry); err != nil {
							b.Error(err)
							return
						}
					} else if _, found, err := s.Find(tok); err != nil || !found {
						b.Errorf("Find of a live session = found %v, error %v; want true, nil", found, err)
						return
					}
				}
				ops[w] += len(probe)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, o := range ops {
		total += o
	}
	return time.Since(start) / time.Duration(max(total, 1))
}

// janitorInterval is how often the janitor of a store holding n sessions
// runs in measureSweep: long enough that its passes over a store where
// nothing has expired yet (under the write lock, for scs's memstore and
// go-cache) do not run back to back, nor slow the filling much.
func janitorInterval(n int) time.Duration {
	return max(100*time.Millisecond, time.Duration(n)*500*time.Nanosecond)
}

// scalingSweepWindow is how long measureSweep measures Finds for in a store
// of n sessions, whichever the store: -sweep-window at 1,000,000 sessions,
// in proportion at other sizes, and at least 100 ms. The longest of the
// machine's own noise grows with the window, so stores whose sweeps take
// different times compare only over the same one.
func scalingSweepWindow(n int) time.Duration {
	return max(100*time.Millisecond, time.Duration(float64(*sweepWindow)*float64(n)/1e6))
}

// measureSweep fills a store of kind c, whose janitor runs every
// janitorInterval(n), with n sessions: the first half live for an hour, the
// second half expiring together a millisecond before one of the janitor's
// ticks. From that expiry it calls Find on live sessions in a loop
// (findwaits.Measure) until the store holds only the live half and
// scalingSweepWindow(n) has passed, and reports how long the sweep took
// (sweep-ms: a millisecond of it waiting for the tick, and up to a
// millisecond more polling the count), the window (window-s) and how long
// those Finds waited. BenchmarkSweepFindWait sets beside such figures the
// waits of a store with no sweep over the same window.
//
// The janitor's ticks are reckoned from a moment taken just before the
// store is opened, so that they come at that reckoning or a little after it.
// When a loaded machine filled the store too slowly for the expiry chosen, it
// tries again with more time to spare.
func measureSweep(b *testing.B, c storeKind, n int) {
	interval := janitorInterval(n)
	half := n / 2
	probe := make([]string, min(half, 1000))
	for i := range probe {
		probe[i] = token(rand.IntN(half)) // a string of its own, as parsed from a cookie
	}
	goroutines := runtime.NumGoroutine()
	for attempt := 1; ; attempt++ {
		opened := time.Now()
		s, held, closeStore := c.inProcess(b, interval)
		start := time.Now()
		fillSessions(b, s, 0, half, start.Add(time.Hour))
		first := time.Since(start)
		// The second half takes longer than the first, but not twice as long.
		ready := time.Now().Add(time.Duration(2*attempt)*first + time.Duration(attempt)*200*time.Millisecond)
		ticks := int64((ready.Sub(opened) + interval - 1) / interval) // up to the first tick after ready
		expiry := opened.Add(time.Duration(ticks)*interval - time.Millisecond)
		fillSessions(b, s, half, n, expiry)
		runtime.GC()
		if time.Until(expiry) < 10*time.Millisecond {
			closeStore()
			awaitDropped(b, c, goroutines)
			if attempt == 3 {
				b.Fatalf("sessions expired before the store was full, %d times (first half: %v)", attempt, first)
			}
			b.Logf("sessions expired before the store was full (first half: %v); trying again", first)
			continue
		}

		time.Sleep(time.Until(expiry))
		var swept, window time.Duration
		waits := findwaits.Measure(s, probe, func() {
			for held() > n-half {
				time.Sleep(time.Millisecond)
			}
			swept = time.Since(expiry)
			time.Sleep(time.Until(expiry.Add(scalingSweepWindow(n))))
			window = time.Since(expiry)
		})
		closeStore()
		b.ReportMetric(float64(swept)/float64(time.Millisecond), "sweep-ms")
		b.ReportMetric(window.Seconds(), "window-s")
		waits.Report(b, "sweep")
		awaitDropped(b, c, goroutines)
		return
	}
}

// TestSessionData: the scaling benchmarks' sessions are the 157 bytes the
// storetest kit's workloads use, and each comes in a slice of its own,
// with no spare capacity.
func TestSessionData(t *testing.T) {
	if len(sessionData) != 157 {
		t.Fatalf("sessionData is %d bytes; want 157", len(sessionData))
	}
	a, b := freshData(), freshData()
	if !bytes.Equal(a, sessionData) || cap(a) != len(a) || &a[0] == &b[0] {
		t.Fatalf("freshData() = %d bytes (cap %d), shared %v; want a private copy of sessionData with cap == len", len(a), cap(a), &a[0] == &b[0])
	}
}
