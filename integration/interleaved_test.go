// SPDX-License-Identifier: MIT

package integration

import (
	"flag"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golangcollege/memstore/internal/floor"
)

// BenchmarkInterleaved is the side-by-side comparison the figures of
// docs/performance.md come from: this store, scs v2's memstore, otter and
// the floor (internal/floor, the least work a store of this shape can do),
// each holding the same sessions, 128 bytes under random 43-byte tokens,
// measured in rounds: in each round every workload runs a batch on every
// store, in an order that turns from round to round, so that a machine
// whose load drifts disturbs them alike. A figure is the median of the
// rounds; a ratio is the median of the per-round ratios, so that a round
// the machine slowed counts once whichever store it slowed.
//
// The workloads hand the stores fresh token strings drawn at random, as
// requests parse them from cookies:
//
//   - find: Find of a held session, from one goroutine locked to its
//     thread, timed by that thread's CPU time (on Linux; elsewhere the wall
//     clock), so that time the operating system gives other work stays out.
//   - commit: Commit over a held session, likewise. The floor's compaction
//     runs between batches, untimed.
//   - mixed: nine Finds to a Commit from GOMAXPROCS goroutines, the wall
//     time per operation. The floor, which cannot compact beside readers,
//     sits this one out.
//
// Sub-benchmarks are named n=SESSIONS, for 10,000 sessions and, with
// -max-sessions 1000000, a million. Each reports, for every workload, this
// store's median (find-ns-memstore and so on), every other store's, and
// this store's ratio to each (find-x-scs, find-x-otter, find-x-floor); it
// logs every store's median and every ratio's range over the rounds. The
// figures of docs/performance.md come from
//
//	go test -run '^$' -bench Interleaved -benchtime 1x -timeout 0 -v . -rounds 15 -max-sessions 1000000
//
// CI's one-shot run of every benchmark runs one round, as a smoke check.
func BenchmarkInterleaved(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		if n > *maxSessions {
			continue
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportMetric(0, "ns/op") // the time of the whole comparison means nothing
			for range b.N {
				interleave(b, n, *rounds)
			}
		})
	}
}

// rounds is how many rounds BenchmarkInterleaved runs.
var rounds = flag.Int("rounds", 1, "how many rounds BenchmarkInterleaved runs: 15 for the figures of docs/performance.md")

// interleavedBatch is how many operations a batch of BenchmarkInterleaved
// runs on one store: some tens of milliseconds.
const interleavedBatch = 200_000

// candidate is a store BenchmarkInterleaved measures.
type candidate struct {
	name     string
	s        store
	prepare  func(commits int) // before a batch of commits, untimed; nil for none
	parallel bool              // takes part in the mixed workload
	next     int               // where in the probe its next batch starts
}

// interleavedWorkloads are the workloads of BenchmarkInterleaved, in order.
var interleavedWorkloads = []string{"find", "commit", "mixed"}

func interleave(b *testing.B, n, rounds int) {
	toks := randomTokens(n)
	data := make([]byte, 128)
	for i := range data {
		data[i] = byte(i)
	}
	expiry := time.Now().Add(24 * time.Hour)
	probe := freshTokens(toks)

	var cands []*candidate
	for _, name := range []string{"memstore", "scs-memstore", "otter"} {
		k, ok := storeNamed(name)
		if !ok {
			b.Fatalf("no store %s in the stores table", name)
		}
		s, _, closeStore := k.inProcess(b, 0)
		b.Cleanup(closeStore)
		cands = append(cands, &candidate{name: name, s: s, parallel: true})
	}
	ft := floor.New(n, 43+len(data), max(n, interleavedBatch))
	cands = append(cands, &candidate{
		name: "floor",
		s:    floorStore{ft},
		prepare: func(commits int) {
			if ft.Free() < commits*(1+43+len(data)) {
				ft.Compact()
			}
		},
	})
	for _, c := range cands {
		for _, tok := range toks {
			if err := c.s.Commit(tok, data, expiry); err != nil {
				b.Fatalf("%s: filling: %v", c.name, err)
			}
		}
	}
	runtime.GC()

	// times[workload][store] holds each round's time per operation.
	times := make(map[string]map[string][]float64)
	var clock string
	for r := range rounds {
		for _, w := range interleavedWorkloads {
			if times[w] == nil {
				times[w] = make(map[string][]float64)
			}
			for i := range cands {
				c := cands[(i+r)%len(cands)]
				var per float64 // ns per operation
				switch w {
				case "find", "commit":
					if c.prepare != nil && w == "commit" {
						c.prepare(interleavedBatch)
					}
					per, clock = batch(b, c, probe, w == "commit", data, expiry)
				case "mixed":
					if !c.parallel {
						continue
					}
					per = mixedBatch(b, c, probe, data, expiry)
				}
				times[w][c.name] = append(times[w][c.name], per)
			}
		}
	}

	b.Logf("n=%d, %d rounds of %d operations per store and workload; find and commit timed by %s time", n, rounds, interleavedBatch, clock)
	for _, w := range interleavedWorkloads {
		var line strings.Builder
		for _, c := range cands {
			t := times[w][c.name]
			if t == nil {
				continue
			}
			med := median(t)
			fmt.Fprintf(&line, "  %s %.1f ns", c.name, med)
			b.ReportMetric(med, w+"-ns-"+c.name)
		}
		b.Logf("%s, medians:%s", w, line.String())
		for _, ref := range []string{"scs-memstore", "otter", "floor"} {
			if times[w][ref] == nil {
				continue
			}
			ratios := make([]float64, rounds)
			for r := range ratios {
				ratios[r] = times[w]["memstore"][r] / times[w][ref][r]
			}
			unit := w + "-x-" + strings.TrimSuffix(ref, "-memstore")
			b.ReportMetric(median(ratios), unit)
			b.Logf("%s: memstore ÷ %s = %.2f (rounds: %.2f to %.2f)", w, ref, median(ratios), slices.Min(ratios), slices.Max(ratios))
		}
	}
}

// batch runs interleavedBatch Finds, or Commits, of c's next tokens of
// probe from this goroutine, locked to its thread, and returns the time per
// operation in nanoseconds by that thread's clock (threadTime) and which
// clock that was.
func batch(b *testing.B, c *candidate, probe []string, commit bool, data []byte, expiry time.Time) (float64, string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread() // a locked goroutine that ends ends its thread, and the servers other tests started with it
	start, clock := threadTime()
	for i := range interleavedBatch {
		tok := probe[(c.next+i)%len(probe)]
		if commit {
			if err := c.s.Commit(tok, data, expiry); err != nil {
				b.Fatalf("%s: Commit: %v", c.name, err)
			}
		} else if _, found, err := c.s.Find(tok); err != nil || !found {
			b.Fatalf("%s: Find of a held session = found %v, error %v; want true, nil", c.name, found, err)
		}
	}
	end, _ := threadTime()
	c.next += interleavedBatch
	return float64(end-start) / interleavedBatch, clock
}

// mixedBatch runs interleavedBatch operations of c, nine Finds to a Commit,
// from GOMAXPROCS goroutines, each on its own part of probe, and returns
// the wall time per operation in nanoseconds.
func mixedBatch(b *testing.B, c *candidate, probe []string, data []byte, expiry time.Time) float64 {
	procs := runtime.GOMAXPROCS(0)
	each := interleavedBatch / procs
	var wg sync.WaitGroup
	start := time.Now()
	for g := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := c.next + g*each
			for i := range each {
				tok := probe[(from+i)%len(probe)]
				if i%10 == 0 {
					if err := c.s.Commit(tok, data, expiry); err != nil {
						b.Errorf("%s: Commit: %v", c.name, err)
						return
					}
				} else if _, found, err := c.s.Find(tok); err != nil || !found {
					b.Errorf("%s: Find of a held session = found %v, error %v; want true, nil", c.name, found, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	per := float64(time.Since(start)) / float64(each*procs)
	c.next += each * procs
	return per
}

// median returns the median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// randomTokens returns n tokens made as scs makes them.
func randomTokens(n int) []string {
	toks := make([]string, n)
	for i := range toks {
		toks[i] = newToken()
	}
	return toks
}

// floorStore is the floor as a store, for the workloads: it keeps no
// expiry, and its Commit fails when its arena needs compacting, which the
// workload does between batches.
type floorStore struct{ t *floor.Table }

func (f floorStore) Find(token string) ([]byte, bool, error) {
	b, found := f.t.Find(token)
	return b, found, nil
}

func (f floorStore) Commit(token string, b []byte, _ time.Time) error {
	if !f.t.Commit(token, b) {
		return fmt.Errorf("the floor's arena is full: %d bytes free", f.t.Free())
	}
	return nil
}

func (f floorStore) Delete(string) error { return fmt.Errorf("the floor has no Delete") }
