// SPDX-License-Identifier: MIT

package memstore_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// The durable mode's benchmarks compare a store from Open, whose log
// records every change, with one from New. Commit and Find are measured
// side by side, as sub-benchmarks named op=OP/store=new and op=OP/store=open,
// so that
//
//	for i in 1 2 3 4 5 6; do go test -run '^$' -bench 'Durable$' .; done > durable.txt
//	benchstat -col /store durable.txt
//
// gives the ratios. (-count 6 would run each sub-benchmark six times in a
// row; the loop interleaves the two stores, so that a machine whose load
// drifts disturbs both alike.) BenchmarkDurableClients measures the calls that wait for
// an fsync under 50 clients, and BenchmarkDurableOpen the restore of a
// directory. Every store keeps its directory in os.TempDir, so the figures are
// those of the disk under it.

// durableSessions is how many sessions BenchmarkDurableOpen restores.
var durableSessions = flag.Int("durable-sessions", 10_000,
	"the number of sessions BenchmarkDurableOpen restores: 1000000 for the figures of docs/performance.md")

// settle returns once every change made to the durable store m so far is on
// disk, so that a measurement does not pay for writing what came before it:
// a Delete waits for the records before it too.
func settle(b *testing.B, m *memstore.MemStore) {
	b.Helper()
	if err := m.Delete("settle"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDurable measures Commit, sequential and from GOMAXPROCS
// goroutines, and Find, on a store from New and one from Open with the
// default sync interval, each holding 100,000 sessions that every Commit
// overwrites in turn. The store from Open writes every change to its log,
// which its writer goroutine writes and syncs every second and rewrites as
// it grows, on the same cores as the callers.
func BenchmarkDurable(b *testing.B) {
	toks := tokens(100_000)
	expiry := time.Now().Add(time.Hour)
	filled := func(b *testing.B, durable bool) *memstore.MemStore {
		if !durable {
			m := memstore.New(0)
			b.Cleanup(func() { m.Close() })
			fill(b, m, toks, expiry)
			return m
		}
		m := openStore(b, storeDir(b))
		fill(b, m, toks, expiry)
		settle(b, m)
		return m
	}
	stores := []struct {
		name    string
		durable bool
	}{{"new", false}, {"open", true}}
	for _, s := range stores {
		b.Run("op=commit/store="+s.name, func(b *testing.B) {
			m := filled(b, s.durable)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.Commit(toks[i%len(toks)], payload, expiry)
			}
		})
	}
	for _, s := range stores {
		b.Run("op=commit-parallel/store="+s.name, func(b *testing.B) {
			m := filled(b, s.durable)
			var goroutines atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Each goroutine starts at a token of its own, so that
				// they overwrite different sessions.
				i := int(goroutines.Add(1)) * len(toks) / 16
				for ; pb.Next(); i++ {
					m.Commit(toks[i%len(toks)], payload, expiry)
				}
			})
		})
	}
	for _, s := range stores {
		b.Run("op=find/store="+s.name, func(b *testing.B) {
			m := filled(b, s.durable)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.Find(toks[i%len(toks)])
			}
		})
	}
}

// BenchmarkDurableClients measures the calls of a store from Open that wait
// for an fsync, made by 50 clients at once: Delete, and Commit under a sync
// interval of 0. ns/op is the time per call across the clients, the inverse
// of their throughput; p50-µs and p99-µs are the latency of one call, as its
// client saw it; and deletes/fsync or commits/fsync how many calls shared
// an fsync (from Stats.Syncs).
func BenchmarkDurableClients(b *testing.B) {
	const clients = 50
	expiry := time.Now().Add(time.Hour)
	b.Run(fmt.Sprintf("op=delete/sync=1s/clients=%d", clients), func(b *testing.B) {
		m := openStore(b, storeDir(b))
		toks := tokens(b.N) // each Delete removes a session of its own
		fill(b, m, toks, expiry)
		settle(b, m)
		syncs := m.Stats().Syncs
		concurrently(b, clients, func(i int) error { return m.Delete(toks[i]) })
		b.ReportMetric(float64(b.N)/float64(m.Stats().Syncs-syncs), "deletes/fsync")
	})
	b.Run(fmt.Sprintf("op=commit/sync=0/clients=%d", clients), func(b *testing.B) {
		m := openStore(b, storeDir(b), memstore.WithSyncInterval(0))
		toks := tokens(100_000)
		syncs := m.Stats().Syncs
		concurrently(b, clients, func(i int) error { return m.Commit(toks[i%len(toks)], payload, expiry) })
		b.ReportMetric(float64(b.N)/float64(m.Stats().Syncs-syncs), "commits/fsync")
	})
}

// concurrently makes b.N calls of call, numbered 0 to b.N-1, from clients
// goroutines at once, timing them all together, and reports the median and
// the 99th percentile of one call's latency, in microseconds. A call's error
// fails b.
func concurrently(b *testing.B, clients int, call func(i int) error) {
	b.Helper()
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				start := time.Now()
				err := call(i)
				latencies[i] = time.Since(start)
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2])/float64(time.Microsecond), "p50-µs")
	b.ReportMetric(float64(latencies[len(latencies)*99/100])/float64(time.Microsecond), "p99-µs")
}

// BenchmarkDurableOpen measures Open of a directory holding -durable-sessions
// sessions (149 bytes under a 43-byte token): held in a log alone, as the
// first Open after they were committed finds them (from=log), and held in a
// base, as after a rewrite (from=base). ns/op is Open's time until it
// returns, sessions/s the sessions it restores per second, and
// disk-B/session the bytes of the directory's files per session. The files
// are copied afresh before each Open, so they are in the page cache: the
// figures are those of a restart after a crash of the process, not of the
// machine. The default size keeps CI's one-shot run quick; the figures of
// docs/performance.md and docs/durability.md come from
//
//	go test -run '^$' -bench DurableOpen -benchtime 1x -count 3 -timeout 0 . -durable-sessions 1000000
func BenchmarkDurableOpen(b *testing.B) {
	n := *durableSessions
	logged := storeDir(b)
	m, err := memstore.Open(logged, 0)
	if err != nil {
		b.Fatal(err)
	}
	fill(b, m, tokens(n), time.Now().Add(24*time.Hour))
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	if st := m.Stats(); st.Rewrites > 0 {
		b.Fatalf("committing %d sessions rewrote the log %d times: the directory holds a base", n, st.Rewrites)
	}
	b.Run(fmt.Sprintf("from=log/n=%d", n), func(b *testing.B) { measureOpen(b, logged, n) })

	// An Open that replayed a log rewrites it as a base in the background
	// (unless closed first).
	based := filepath.Join(b.TempDir(), "based")
	copyDir(b, logged, based)
	m, err = memstore.Open(based, 0)
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); m.Stats().Rewrites == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("no rewrite within a minute of an Open that replayed a log")
		}
	}
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("from=base/n=%d", n), func(b *testing.B) { measureOpen(b, based, n) })
}

// measureOpen times Open of a copy of the directory template, which holds n
// live sessions, and measures the memory it needs beyond them:
// extra-MB/open is the peak of the heap's objects during Open less what
// the store holds once it returns (after a GC: its sessions and index),
// the worst of the rounds; held-MB the latter. The heap is sampled every
// millisecond through runtime/metrics, which stops nothing, so a peak
// shorter than that may be missed: the figure is a floor, close for the
// buffers an Open holds for its whole length.
func measureOpen(b *testing.B, template string, n int) {
	parent := b.TempDir()
	var extra, held uint64
	for i := range b.N {
		b.StopTimer()
		dir := filepath.Join(parent, fmt.Sprint(i))
		copyDir(b, template, dir)
		runtime.GC() // the garbage of the last round is not this Open's
		stop := watchHeap()
		b.StartTimer()
		m, err := memstore.Open(dir, 0)
		b.StopTimer()
		peak := stop()
		if err != nil {
			b.Fatal(err)
		}
		if m.Len() != n {
			b.Fatalf("Open restored %d sessions; want %d", m.Len(), n)
		}
		runtime.GC()
		after := heapObjects()
		extra, held = max(extra, peak-min(peak, after)), after
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(extra)/1e6, "extra-MB/open")
	b.ReportMetric(float64(held)/1e6, "held-MB")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	var size int
	for _, content := range dirContents(b, template) {
		size += len(content)
	}
	b.ReportMetric(float64(size)/float64(n), "disk-B/session")
}

// watchHeap samples heapObjects every millisecond until the function it
// returns is called, which returns the largest sample.
func watchHeap() (stop func() uint64) {
	done, peak := make(chan struct{}), make(chan uint64)
	go func() {
		most := heapObjects()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				most = max(most, heapObjects())
			case <-done:
				peak <- max(most, heapObjects())
				return
			}
		}
	}()
	return func() uint64 {
		close(done)
		return <-peak
	}
}

// copyDir copies the files of the directory src into a new directory dst.
func copyDir(b *testing.B, src, dst string) {
	b.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		b.Fatal(err)
	}
	if err := os.Chmod(dst, 0o700); err != nil { // CopyFS lets others in
		b.Fatal(err)
	}
}
