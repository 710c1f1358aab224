// SPDX-License-Identifier: MIT

// Package findwaits measures how long Find calls wait while something runs
// beside them, such as a store's sweep or snapshot: the benchmarks of this
// repository use it to show whether such work holds requests up.
//
// It is internal, not part of the storetest kit, because it measures this
// store's own concerns rather than checking a store against scs's contract:
// a store author needs Run and Bench only, and keeping these out of the kit's
// API leaves them free to change. It sits in the root's internal directory,
// not under storetest, so that the root package's benchmarks can import it,
// and so can the integration module, whose path
// (github.com/golangcollege/memstore/integration) lies within the root's.
package findwaits

import (
	"math"
	"math/bits"
	"testing"
	"time"
)

// Finder is what Measure needs of a store: its Find method.
type Finder interface {
	Find(token string) (b []byte, found bool, err error)
}

// Waits is how long a run of Find calls took, as Measure saw them: the
// figures that show whether something running beside the calls, such as a
// store's cleanup, holds requests up.
type Waits struct {
	Calls   int           // how many Find calls were made
	Longest time.Duration // the longest of them
	P9999   time.Duration // the 99.99th percentile, to within 1/8 of its value
}

// Measure calls s.Find on tokens, round and round from one goroutine, for as
// long as during runs, and returns how long the calls took; what Find returns
// is ignored. tokens must not be empty. Past one small histogram at the
// start, measuring allocates nothing, so no garbage collection it causes adds
// to the waits. The waits include whatever delays
// the calling goroutine: the scheduler, the garbage collector, the machine.
// Run it with GOMAXPROCS of 2 or more, so that during and the calls run at
// once.
func Measure(s Finder, tokens []string, during func()) Waits {
	var hist waitHistogram
	var longest time.Duration
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			s.Find(tokens[i%len(tokens)])
			wait := time.Since(start)
			hist[waitBucket(wait)]++
			longest = max(longest, wait)
		}
	}()
	during()
	close(stop)
	<-done
	// A bucket's top can lie above the longest wait that fell in it.
	return Waits{Calls: hist.total(), Longest: longest, P9999: min(hist.percentile(0.9999), longest)}
}

// Report records w as two benchmark metrics, in microseconds, named after
// what ran beside the calls: max-µs-BESIDE and p99.99-µs-BESIDE. beside must
// not contain white space (b.ReportMetric panics on such a unit).
func (w Waits) Report(b *testing.B, beside string) {
	b.ReportMetric(float64(w.Longest)/float64(time.Microsecond), "max-µs-"+beside)
	b.ReportMetric(float64(w.P9999)/float64(time.Microsecond), "p99.99-µs-"+beside)
}

// waitHistogram counts durations in buckets 1/8 of a power of two wide, so
// that counting millions of calls takes a fixed array and a percentile is off
// by at most 12.5%.
type waitHistogram [64 * 8]int

// waitBucket returns the bucket that d falls in.
func waitBucket(d time.Duration) int {
	n := uint64(max(d, 1))
	exp := bits.Len64(n) - 1 // 2^exp <= n < 2^(exp+1)
	if exp < 3 {
		return int(n)
	}
	return exp*8 + int(n>>(exp-3)&7)
}

// bucketTop is the largest duration that falls in bucket i.
func bucketTop(i int) time.Duration {
	if i < 8 {
		return time.Duration(i)
	}
	exp, eighth := i/8, i%8
	return time.Duration((8+uint64(eighth)+1)<<(exp-3) - 1)
}

// total is the number of durations counted.
func (h *waitHistogram) total() int {
	total := 0
	for _, n := range h {
		total += n
	}
	return total
}

// percentile returns the duration at or below which fraction q of the calls fell.
func (h *waitHistogram) percentile(q float64) time.Duration {
	rank := int(math.Ceil(q * float64(h.total())))
	for i, n := range h {
		if rank -= n; rank <= 0 {
			return bucketTop(i)
		}
	}
	return 0
}
