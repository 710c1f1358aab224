// SPDX-License-Identifier: MIT

package memstore_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/internal/findwaits"
	"github.com/golangcollege/memstore/storetest"
)

// naiveStore is the reference the benchmarks measure against: a map, a
// sync.RWMutex and a wall-clock comparison, everything under the lock, the
// caller's slice kept as it is. scs v2's memstore is built the same way.
type naiveStore struct {
	mu    sync.RWMutex
	items map[string]naiveItem
}

type naiveItem struct {
	data      []byte
	expiresAt int64 // Unix nanoseconds
}

func newNaiveStore() *naiveStore { return &naiveStore{items: make(map[string]naiveItem)} }

func (s *naiveStore) Find(token string) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, ok := s.items[token]
	if !ok || time.Now().UnixNano() > it.expiresAt {
		return nil, false, nil
	}
	return it.data, true, nil
}

func (s *naiveStore) Commit(token string, b []byte, expiry time.Time) error {
	s.mu.Lock()
	s.items[token] = naiveItem{data: b, expiresAt: expiry.UnixNano()}
	s.mu.Unlock()
	return nil
}

func (s *naiveStore) Delete(token string) error {
	s.mu.Lock()
	delete(s.items, token)
	s.mu.Unlock()
	return nil
}

// payload is the size of a small real scs session (its gob encoding of a
// deadline and a few values).
var payload = make([]byte, 149)

// tokens returns n distinct tokens shaped like scs's (43 characters).
func tokens(n int) []string {
	t := make([]string, n)
	for i := range t {
		t[i] = fmt.Sprintf("%043d", i)
	}
	return t
}

// fill commits a session for every token in toks, expiring at expiry.
func fill(b *testing.B, s storetest.Store, toks []string, expiry time.Time) {
	b.Helper()
	for _, tok := range toks {
		if err := s.Commit(tok, payload, expiry); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStores runs the storetest kit's standard workloads (find-hit,
// commit and parallel-mixed-90-10 with fresh tokens drawn at random, their
// -inorder forms, find-miss, churn and all-10k) against this
// store and the naive one, as sub-benchmarks named store=NAME, so that
//
//	go test -run '^$' -bench Stores -count 6 > stores.txt
//	benchstat -col /store stores.txt
//
// lines them up. all-10k is skipped for the naive store, which has no All.
func BenchmarkStores(b *testing.B) {
	b.Run("store=memstore", func(b *testing.B) {
		storetest.Bench(b, func(b testing.TB) storetest.Store {
			m := memstore.New(time.Minute)
			b.Cleanup(func() { m.Close() })
			return m
		})
	})
	b.Run("store=naive", func(b *testing.B) {
		storetest.Bench(b, func(testing.TB) storetest.Store { return newNaiveStore() })
	})
}

// BenchmarkMaxBytes compares Commit under a full cap, where nearly every
// Commit is of a session evicted since and evicts one, with Commit and no
// cap, where every Commit overwrites; and Find with and without a cap, which
// should not differ. Both take fresh token strings drawn at random, as
// requests bring them.
func BenchmarkMaxBytes(b *testing.B) {
	toks := tokens(100_000)
	expiry := time.Now().Add(time.Hour)
	for _, c := range []struct {
		name string
		opts []memstore.Option
	}{
		{"cap=none", nil},
		{"cap=full", []memstore.Option{memstore.WithMaxBytes(2 << 20)}}, // about 6,000 of the sessions
	} {
		m := memstore.New(0, c.opts...)
		fill(b, m, toks, expiry)
		probe := freshProbe(toks) // under the cap, nearly all evicted by their turn
		b.Run("commit/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.Commit(probe[i%len(probe)], payload, expiry)
			}
		})
		m.Close()
	}
	for _, c := range []struct {
		name string
		opts []memstore.Option
	}{
		{"cap=none", nil},
		{"cap=set", []memstore.Option{memstore.WithMaxBytes(1 << 30)}}, // room for all
	} {
		m := memstore.New(0, c.opts...)
		fill(b, m, toks[:10_000], expiry)
		probe := freshProbe(toks[:10_000])
		b.Run("find/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.Find(probe[i%len(probe)])
			}
		})
		m.Close()
	}
}

func BenchmarkStats(b *testing.B) {
	m := memstore.New(0, memstore.WithMaxBytes(1<<30))
	defer m.Close()
	fill(b, m, tokens(10_000), time.Now().Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		m.Stats()
	}
}

// halfExpired returns a store of len(toks) sessions: the first half live for
// an hour, the second half expire together, well after the store is full. On
// a machine so loaded that they expire before that, it tries again with a
// longer margin.
func halfExpired(b *testing.B, toks []string, cleanupInterval time.Duration) (m *memstore.MemStore, expiry time.Time) {
	half := len(toks) / 2
	for margin := time.Second; margin < time.Minute; margin *= 2 {
		m = memstore.New(cleanupInterval)
		start := time.Now()
		fill(b, m, toks[:half], start.Add(time.Hour))
		expiry = time.Now().Add(2*time.Since(start) + margin) // filling the other half takes about as long
		fill(b, m, toks[half:], expiry)
		runtime.GC() // now, so that no collection runs while waits are measured
		if time.Until(expiry) > 100*time.Millisecond {
			return m, expiry
		}
		m.Close()
		b.Logf("the sessions expired before the store was full; trying again with a margin of %v", 2*margin)
	}
	b.Fatal("the sessions expired before the store was full, however long the margin")
	return nil, time.Time{}
}

// BenchmarkSweep measures how long a Find waits while the janitor sweeps
// 1,000,000 sessions, half of them expired, beside the same figures with no
// sweep running.
func BenchmarkSweep(b *testing.B) {
	toks := tokens(1_000_000)
	live := freshProbe(toks[:1000]) // what a Find asks for: sessions that stay
	for range b.N {
		// The janitor sweeps back to back (every millisecond, each pass
		// longer than that). Measure from just before the sessions expire
		// until the pass that removes them is done.
		swept, expiry := halfExpired(b, toks, time.Millisecond)
		time.Sleep(time.Until(expiry) - 20*time.Millisecond)
		start := time.Now()
		sweeping := findwaits.Measure(swept, live, func() {
			for swept.Len() > len(toks)/2 {
				time.Sleep(time.Millisecond)
			}
		})
		window := time.Since(start)
		swept.Close()

		idle, expiry := halfExpired(b, toks, 0)
		time.Sleep(time.Until(expiry))
		still := findwaits.Measure(idle, live, func() {
			for deadline := time.Now().Add(window); time.Now().Before(deadline); {
				idle.Len() // as the sweeping measurement does
				time.Sleep(time.Millisecond)
			}
		})
		idle.Close()

		sweeping.Report(b, "sweep")
		still.Report(b, "idle")
		b.ReportMetric(float64(sweeping.Longest)/float64(still.Longest), "max-ratio")
		b.ReportMetric(float64(sweeping.P9999)/float64(still.P9999), "p99.99-ratio")
	}
}

// BenchmarkHeapPerSession reports what each of 1,000,000 sessions takes on
// the heap, 157 bytes of data (a fresh slice each) under a 43-byte token:
// as committed (heap-B/session), and after a churn that overwrites every
// session twice, in random order, and lets the janitor make a pass
// (churned-B/session).
func BenchmarkHeapPerSession(b *testing.B) {
	const sessions = 1_000_000
	toks := tokens(sessions)
	expiry := time.Now().Add(time.Hour)
	for range b.N {
		before := heapAfterGC()
		m := memstore.New(100 * time.Millisecond)
		for _, tok := range toks {
			m.Commit(tok, make([]byte, 157), expiry)
		}
		b.ReportMetric(float64(heapAfterGC()-before)/sessions, "heap-B/session")
		for range 2 {
			for _, i := range rand.Perm(sessions) {
				m.Commit(toks[i], make([]byte, 157), expiry)
			}
		}
		for sweeps := m.Stats().Sweeps; m.Stats().Sweeps < sweeps+2; { // a whole pass after the churn
			time.Sleep(10 * time.Millisecond)
		}
		b.ReportMetric(float64(heapAfterGC()-before)/sessions, "churned-B/session")
		m.Close()
	}
}
