// SPDX-License-Identifier: MIT

package integration

import (
	"fmt"
	"testing"

	"github.com/golangcollege/memstore/storetest"
)

// BenchmarkProcs is the GOMAXPROCS sweep: parallel-mixed-90-10 and Finds
// alone, from GOMAXPROCS goroutines, over sessions drawn at random, each
// token a fresh string as parsed from a cookie (storetest.Parallel), for the
// stores that live in this process's memory, holding 10,000 sessions and,
// with -max-sessions 1000000, a million, as sub-benchmarks named
// store=NAME/n=SESSIONS/WORKLOAD. go test's -cpu sets the procs:
//
//	go test -run '^$' -bench Procs -cpu 1,2,4,8,16 -count 6 -timeout 0 . -max-sessions 1000000
//
// Procs beyond the machine's cores measure time slicing, not scaling: on
// two cores only 1 and 2 mean anything.
func BenchmarkProcs(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		if n > *maxSessions {
			continue
		}
		for _, c := range inProcessStores() {
			makeStore := func(tb testing.TB) storetest.Store {
				s, _, closeStore := c.inProcess(tb, 0)
				tb.Cleanup(closeStore)
				return s
			}
			name := fmt.Sprintf("store=%s/n=%d/", c.name, n)
			b.Run(name+"parallel-mixed-90-10-random", func(b *testing.B) {
				storetest.Parallel(b, makeStore, n, 10, true)
			})
			b.Run(name+"parallel-find-random", func(b *testing.B) {
				storetest.Parallel(b, makeStore, n, 0, true)
			})
		}
	}
}
