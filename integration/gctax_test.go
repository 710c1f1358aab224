// SPDX-License-Identifier: MIT

package integration

import (
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGCTax measures what holding sessions costs the rest of a program:
// the garbage collector marks whatever pointers a store holds, on every
// cycle, however busy the program is with other work.
//
// A request loop that allocates as a program does (20 buffers of 4 KiB per
// request) and reads a session at random (a Find, and a Commit of fresh data
// one request in ten) runs on GOMAXPROCS goroutines, first against a store of
// the same kind holding baseSessions, then against one holding n, then
// against one holding baseSessions again. The two base runs bracket the run
// with n, moments apart on the same machine, and their mean is the baseline,
// so that a machine whose load drifts moves both sides of the ratio.
// Metrics:
//
//   - throughput-ratio: requests per second holding n ÷ at the base, the GC
//     tax: 1 means none.
//   - req/s-held, req/s-base: those requests per second.
//   - gc-cpu-%-held, gc-cpu-%-base: the collector's share of all CPU, from
//     runtime/metrics (/cpu/classes/gc/total ÷ /cpu/classes/total).
//   - p99.9-µs-held, p99.9-µs-base: the 99.9th-percentile request time.
//
// The figures of the base are the means of its two runs.
//
// Each run lasts at least gcTaxPhase and gcTaxCycles collections, so that a
// large store, whose heap is collected less often, is measured over whole
// cycles too. Run it with -benchtime 1x (each iteration measures anew and
// reports its own figures) and -count for repeats. Sizes above 10,000
// sessions run only when asked for with -max-sessions (see scaling_test.go).
func BenchmarkGCTax(b *testing.B) {
	forEachSize(b, func(b *testing.B, c storeKind, n int) {
		b.ReportMetric(0, "ns/op") // the time of a whole measurement means nothing
		for range b.N {
			gcTax(b, c, n).report(b)
		}
	})
}

// The request loop's shape.
const (
	garbagePerRequest = 20   // buffers each request allocates
	garbageBytes      = 4096 // the size of each
	commitEvery       = 10   // one request in this many commits its session
)

// baseSessions is how many sessions the store holds in the baseline: as good
// as none to the collector (about 300 KB, next to the 4 MB heap the runtime
// grows to at least), and enough that the loop's Finds and Commits spread
// over many sessions as they do with n. With a single session, the loop ran
// as fast on a quiet machine but up to three times more slowly on a loaded
// one, which made the tax of a small store look like a gain.
// It is the smallest size measured, so the row of that size shows how far
// two measurements of the same thing differ.
const baseSessions = 1_000

// How long a run of the request loop lasts: at least gcTaxPhase, and at
// least gcTaxCycles collections, but no more than gcTaxMaxPhase.
const (
	gcTaxPhase    = 500 * time.Millisecond
	gcTaxCycles   = 4
	gcTaxMaxPhase = time.Minute
)

// gcTaxFigures are BenchmarkGCTax's measurements of one store.
type gcTaxFigures struct {
	base1, held, base2 requestFigures
}

// gcTax measures the request loop against stores of kind c holding
// baseSessions, n sessions, and baseSessions again, one store at a time.
func gcTax(b *testing.B, c storeKind, n int) gcTaxFigures {
	var f gcTaxFigures
	f.base1 = serveFilled(b, c, baseSessions)
	f.held = serveFilled(b, c, n)
	f.base2 = serveFilled(b, c, baseSessions)
	return f
}

// report records f as the metrics BenchmarkGCTax describes.
func (f gcTaxFigures) report(b *testing.B) {
	base := requestFigures{
		perSecond: (f.base1.perSecond + f.base2.perSecond) / 2,
		gcShare:   (f.base1.gcShare + f.base2.gcShare) / 2,
		p999:      (f.base1.p999 + f.base2.p999) / 2,
	}
	b.ReportMetric(f.held.perSecond/base.perSecond, "throughput-ratio")
	f.held.report(b, "held")
	base.report(b, "base")
}

// serveFilled opens a store of kind c with no janitor, fills it with n
// sessions, collects the heap, runs the request loop against it, and returns
// what the loop measured once the store is closed and gone.
func serveFilled(b *testing.B, c storeKind, n int) requestFigures {
	goroutines := runtime.NumGoroutine()
	s, _, closeStore := c.inProcess(b, 0)
	fillSessions(b, s, 0, n, time.Now().Add(time.Hour))
	f := serveRequests(b, s, n)
	closeStore()
	awaitDropped(b, c, goroutines)
	return f
}

// requestFigures are what a run of the request loop measured.
type requestFigures struct {
	perSecond float64       // requests served per second
	gcShare   float64       // the collector's share of all CPU, 0 to 1
	p999      time.Duration // the 99.9th-percentile request time
}

// report records f as metrics whose units end in -beside.
func (f requestFigures) report(b *testing.B, beside string) {
	b.ReportMetric(f.perSecond, "req/s-"+beside)
	b.ReportMetric(100*f.gcShare, "gc-cpu-%-"+beside)
	b.ReportMetric(float64(f.p999)/float64(time.Microsecond), "p99.9-µs-"+beside)
}

// lastGarbage is where the request loop's goroutines leave their garbage
// when they end, which makes the compiler put it on the heap.
var lastGarbage atomic.Pointer[[][]byte]

// serveRequests runs the request loop against s, which holds the sessions
// token(0) to token(keys-1), from GOMAXPROCS goroutines, for as long as
// gcTaxPhase and gcTaxCycles ask, and returns what it measured. It collects
// the heap first, so that the run starts from a finished cycle.
func serveRequests(b *testing.B, s store, keys int) requestFigures {
	procs := runtime.GOMAXPROCS(0)
	times := make([][]time.Duration, procs) // each goroutine's request times
	var stop atomic.Bool
	var wg sync.WaitGroup
	expiry := time.Now().Add(time.Hour)

	runtime.GC()
	before := readGCMetrics()
	start := time.Now()
	for g := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			garbage := make([][]byte, garbagePerRequest)
			defer lastGarbage.Store(&garbage)
			took := make([]time.Duration, 0, 1<<16)
			for !stop.Load() {
				begun := time.Now()
				for j := range garbage {
					garbage[j] = make([]byte, garbageBytes)
				}
				tok := token(rand.IntN(keys))
				if _, found, err := s.Find(tok); err != nil || !found {
					b.Errorf("Find of a live session = found %v, error %v; want true, nil", found, err)
					return
				}
				if rand.IntN(commitEvery) == 0 {
					if err := s.Commit(tok, freshData(), expiry); err != nil {
						b.Errorf("Commit: %v", err)
						return
					}
				}
				took = append(took, time.Since(begun))
			}
			times[g] = took
		}()
	}
	time.Sleep(gcTaxPhase)
	for readGCMetrics().cycles-before.cycles < gcTaxCycles && time.Since(start) < gcTaxMaxPhase {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	after := readGCMetrics()
	if b.Failed() {
		b.FailNow()
	}

	all := slices.Concat(times...)
	slices.Sort(all)
	return requestFigures{
		perSecond: float64(len(all)) / elapsed.Seconds(),
		gcShare:   (after.gcCPU - before.gcCPU) / (after.totalCPU - before.totalCPU),
		p999:      all[(len(all)*999+999)/1000-1],
	}
}

// gcMetrics are the runtime's running totals that serveRequests reads. The
// runtime updates the CPU totals only in the stop-the-world pauses of a
// collection, so the difference of two readings covers whole cycles.
type gcMetrics struct {
	gcCPU, totalCPU float64 // /cpu/classes/gc/total and /cpu/classes/total, in CPU seconds
	cycles          uint64  // collections completed
}

// gcMetricNames are the runtime/metrics that gcMetrics holds, in its order.
var gcMetricNames = []string{
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/gc/cycles/total:gc-cycles",
}

// readGCMetrics reads the runtime's totals now.
func readGCMetrics() gcMetrics {
	samples := make([]metrics.Sample, len(gcMetricNames))
	for i, name := range gcMetricNames {
		samples[i].Name = name
	}
	metrics.Read(samples)
	return gcMetrics{
		gcCPU:    samples[0].Value.Float64(),
		totalCPU: samples[1].Value.Float64(),
		cycles:   samples[2].Value.Uint64(),
	}
}
