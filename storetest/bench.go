// SPDX-License-Identifier: MIT

package storetest

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchSessions is how many sessions the store holds in the benchmarks that
// fill it.
const benchSessions = 10_000

// benchPayload is the data of every session the benchmarks commit: the gob
// encoding that scs's default codec makes of a session holding a deadline, a
// user ID and a preference, 157 bytes.
var benchPayload = sync.OnceValue(func() []byte {
	return session(time.Now().Add(24*time.Hour), map[string]any{
		"userID": 1234567,
		"theme":  "dark",
	})
})

// Bench measures the store that makeStore returns with the standard workloads,
// as sub-benchmarks with fixed names: find-hit, find-hit-random, find-miss,
// commit, commit-random, churn, parallel-mixed-90-10,
// parallel-mixed-90-10-random, and all-10k when the store has an All method
// (the package documentation describes them). Each reports allocations.
//
// Each sub-benchmark calls makeStore itself, with its own b, and fills the
// fresh store outside the timed loop; register closing it with b.Cleanup
// inside makeStore. The sessions a sub-benchmark commits are deleted when it
// ends, outside the timing, before that cleanup runs.
//
// Since the names never change, benchstat lines up the results of any two
// stores run through Bench.
func Bench(b *testing.B, makeStore MakeStore) {
	b.Run("find-hit", func(b *testing.B) {
		s := makeStore(b)
		toks := fill(b, s)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, found, err := s.Find(toks[i%len(toks)]); err != nil || !found {
				b.Fatalf("Find of a live session = found %v, error %v; want true, nil", found, err)
			}
		}
	})
	b.Run("find-hit-random", func(b *testing.B) {
		s := makeStore(b)
		toks := fill(b, s)
		order := randomOrder(len(toks))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, found, err := s.Find(toks[order[i%len(order)]]); err != nil || !found {
				b.Fatalf("Find of a live session = found %v, error %v; want true, nil", found, err)
			}
		}
	})
	b.Run("find-miss", func(b *testing.B) {
		s := makeStore(b)
		fill(b, s)
		unknown := benchTokens(benchSessions)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, found, err := s.Find(unknown[i%len(unknown)]); err != nil || found {
				b.Fatalf("Find of an unknown token = found %v, error %v; want false, nil", found, err)
			}
		}
	})
	b.Run("commit", func(b *testing.B) {
		s := makeStore(b)
		toks := fill(b, s)
		payload, expiry := benchPayload(), time.Now().Add(time.Hour)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := s.Commit(toks[i%len(toks)], payload, expiry); err != nil {
				b.Fatalf("Commit: %v", err)
			}
		}
	})
	b.Run("commit-random", func(b *testing.B) {
		s := makeStore(b)
		toks := fill(b, s)
		order := randomOrder(len(toks))
		payload, expiry := benchPayload(), time.Now().Add(time.Hour)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := s.Commit(toks[order[i%len(order)]], payload, expiry); err != nil {
				b.Fatalf("Commit: %v", err)
			}
		}
	})
	b.Run("churn", func(b *testing.B) {
		s := makeStore(b)
		toks := benchTokens(benchSessions)
		b.Cleanup(func() { deleteAll(s, toks) })
		payload, expiry := benchPayload(), time.Now().Add(time.Hour)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i > 0 && i%len(toks) == 0 {
				// Each session gets a token of its own, as under scs: a store
				// may refuse a deleted token (see RunHardening).
				b.StopTimer()
				toks = benchTokens(benchSessions)
				b.StartTimer()
			}
			tok := toks[i%len(toks)]
			if err := s.Commit(tok, payload, expiry); err != nil {
				b.Fatalf("Commit: %v", err)
			}
			if _, found, err := s.Find(tok); err != nil || !found {
				b.Fatalf("Find of a session just committed = found %v, error %v; want true, nil", found, err)
			}
			if err := s.Delete(tok); err != nil {
				b.Fatalf("Delete: %v", err)
			}
		}
	})
	b.Run("parallel-mixed-90-10", func(b *testing.B) {
		Parallel(b, makeStore, benchSessions, 10, false)
	})
	b.Run("parallel-mixed-90-10-random", func(b *testing.B) {
		Parallel(b, makeStore, benchSessions, 10, true)
	})
	b.Run("all-10k", func(b *testing.B) {
		s := makeStore(b)
		st, ok := s.(iterableStore)
		if !ok {
			b.Skip("the store has no All method (scs's IterableStore)")
		}
		fill(b, s)
		b.ReportAllocs()
		for b.Loop() {
			all, err := st.All()
			if err != nil || len(all) < benchSessions {
				b.Fatalf("All() = %d sessions, error %v; want at least %d, nil", len(all), err, benchSessions)
			}
		}
	})
}

// Parallel measures Find and Commit from GOMAXPROCS goroutines at once
// (b.RunParallel: go test's -cpu sweeps it) on a store that makeStore
// returns, filled with sessions sessions: one operation in commitEvery is a
// Commit, the others are Finds (commitEvery 10 is parallel-mixed-90-10; 0
// makes them all Finds), on tokens taken in turn or, with random, drawn at
// random, as requests from many users are. It reports allocations.
func Parallel(b *testing.B, makeStore MakeStore, sessions, commitEvery int, random bool) {
	s := makeStore(b)
	toks := fillN(b, s, sessions)
	order := make([]int32, len(toks))
	for i := range order {
		order[i] = int32(i)
	}
	if random {
		order = randomOrder(len(toks))
	}
	payload, expiry := benchPayload(), time.Now().Add(time.Hour)
	var goroutines atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(goroutines.Add(1)) * 7919 // each goroutine starts elsewhere
		for ; pb.Next(); i++ {
			tok := toks[order[i%len(order)]]
			if commitEvery > 0 && i%commitEvery == 0 {
				if err := s.Commit(tok, payload, expiry); err != nil {
					b.Errorf("Commit: %v", err)
					return
				}
			} else if _, found, err := s.Find(tok); err != nil || !found {
				b.Errorf("Find of a live session = found %v, error %v; want true, nil", found, err)
				return
			}
		}
	})
}

// randomOrder returns 65,536 indexes below n drawn at random, for a
// benchmark to take in turn: drawing them in the timed loop would time the
// generator too.
func randomOrder(n int) []int32 {
	order := make([]int32, 1<<16)
	for i := range order {
		order[i] = int32(rand.IntN(n))
	}
	return order
}

// fill commits benchSessions live sessions to s and returns their tokens.
// They are deleted when the benchmark ends.
func fill(b *testing.B, s Store) []string {
	return fillN(b, s, benchSessions)
}

// fillN commits n live sessions to s and returns their tokens. They are
// deleted when the benchmark ends.
func fillN(b *testing.B, s Store, n int) []string {
	b.Helper()
	toks := benchTokens(n)
	b.Cleanup(func() { deleteAll(s, toks) })
	payload, expiry := benchPayload(), time.Now().Add(time.Hour)
	for _, tok := range toks {
		if err := s.Commit(tok, payload, expiry); err != nil {
			b.Fatalf("filling the store: Commit: %v", err)
		}
	}
	return toks
}

// benchTokens returns n new random tokens shaped like scs's.
func benchTokens(n int) []string {
	toks := make([]string, n)
	for i := range toks {
		toks[i] = newToken()
	}
	return toks
}

// deleteAll deletes every token in toks, ignoring errors.
func deleteAll(s Store, toks []string) {
	for _, tok := range toks {
		_ = s.Delete(tok) // tidying up: a failing Delete fails the rules, not the benchmarks
	}
}
