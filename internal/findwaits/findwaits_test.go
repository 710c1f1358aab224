// SPDX-License-Identifier: MIT

package findwaits

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitHistogram: every duration falls in a bucket whose top is at or
// above it and within 1/8 of it, and percentiles come out of the counts.
func TestWaitHistogram(t *testing.T) {
	for d := time.Duration(1); d < time.Hour; d = d*3/2 + 1 {
		i := waitBucket(d)
		if top := bucketTop(i); top < d || float64(top-d) > float64(d)/8 {
			t.Fatalf("%v falls in bucket %d, whose top is %v", d, i, top)
		}
		if i > 0 && bucketTop(i-1) >= d {
			t.Fatalf("%v falls in bucket %d, but bucket %d reaches %v", d, i, i-1, bucketTop(i-1))
		}
	}
	var h waitHistogram
	for range 99_990 {
		h[waitBucket(time.Microsecond)]++
	}
	for range 10 {
		h[waitBucket(time.Millisecond)]++
	}
	if p := h.percentile(0.9999); p < time.Microsecond || p > time.Microsecond*9/8 {
		t.Fatalf("p99.99 = %v, want about 1µs", p)
	}
	h[waitBucket(time.Millisecond)]++
	if p := h.percentile(0.9999); p < time.Millisecond || p > time.Millisecond*9/8 {
		t.Fatalf("p99.99 = %v, want about 1ms", p)
	}
}

// slowStore is a Finder whose Find takes as long as the next wait in waits,
// and counts its calls.
type slowStore struct {
	waits chan time.Duration
	calls *atomic.Int64
}

func (s slowStore) Find(string) ([]byte, bool, error) {
	s.calls.Add(1)
	select {
	case d := <-s.waits:
		time.Sleep(d)
	default:
	}
	return nil, false, nil
}

func TestMeasureSeesASlowCall(t *testing.T) {
	s := slowStore{waits: make(chan time.Duration, 1), calls: new(atomic.Int64)}
	s.waits <- 20 * time.Millisecond
	w := Measure(s, []string{"tok"}, func() {
		for s.calls.Load() < 2 { // the slow call, then a fast one at least
			time.Sleep(time.Millisecond)
		}
	})
	if w.Longest < 20*time.Millisecond || w.Calls < 2 || w.P9999 > w.Longest {
		t.Fatalf("Measure = %+v; want at least two calls, the longest at least 20ms", w)
	}
}
