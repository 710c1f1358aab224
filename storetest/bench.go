// SPDX-License-Identifier: MIT

package storetest

import (
	"math/rand/v2"
	"strings"
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
// as sub-benchmarks with fixed names: find-hit, find-hit-inorder, find-miss,
// commit, commit-inorder, churn, parallel-mixed-90-10,
// parallel-mixed-90-10-inorder, and all-10k when the store has an All method
// (the package documentation describes them). Each reports allocations.
//
// The headline workloads (those without -inorder) look sessions up and
// commit them with fresh token strings drawn at random: each a copy of the
// committed token, made before the timed loop, as a request parses its own
// from the cookie. A store built on a Go map, handed back the very string it
// holds, compares keys by pointer and never reads their bytes; the -inorder
// workloads do just that, in commit order, and flatter such a store.
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
		probe := freshOrder(fill(b, s))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, found, err := s.Find(probe[i%len(probe)]); err != nil || !found {
				b.Fatalf("Find of a live session = found %v, error %v; want true, nil", found, err)
			}
		}
	})
	b.Run("find-hit-inorder", func(b *testing.B) {
		s := makeStore(b)
		toks := fill(b, s)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, found, err := s.Find(toks[i%len(toks)]); err != nil || !found {
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
		probe := freshOrder(fill(b, s))
		payload, expiry := benchPayload(), time.Now().Add(time.Hour)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := s.Commit(probe[i%len(probe)], payload, expiry); err != nil {
				b.Fatalf("Commit: %v", err)
			}
		}
	})
	b.Run("commit-inorder", func(b *testing.B) {
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
	b.Run("churn", func(b *testing.B) {
		s := makeStore(b)
		toks := benchTokens(benchSessions)
		b.Cleanup(func() { deleteAll(s, toks) })
		// The requests after the first carry the token back in a cookie:
		// a string of their own.
		later := fresh(toks)
		payload, expiry := benchPayload(), time.Now().Add(time.Hour)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i > 0 && i%len(toks) == 0 {
				// Each session gets a token of its own, as under scs: a store
				// may refuse a deleted token (see RunHardening).
				b.StopTimer()
				toks = benchTokens(benchSessions)
				later = fresh(toks)
				b.StartTimer()
			}
			tok, again := toks[i%len(toks)], later[i%len(later)]
			if err := s.Commit(tok, payload, expiry); err != nil {
				b.Fatalf("Commit: %v", err)
			}
			if _, found, err := s.Find(again); err != nil || !found {
				b.Fatalf("Find of a session just committed = found %v, error %v; want true, nil", found, err)
			}
			if err := s.Delete(again); err != nil {
				b.Fatalf("Delete: %v", err)
			}
		}
	})
	b.Run("parallel-mixed-90-10", func(b *testing.B) {
		Parallel(b, makeStore, benchSessions, 10, true)
	})
	b.Run("parallel-mixed-90-10-inorder", func(b *testing.B) {
		Parallel(b, makeStore, benchSessions, 10, false)
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
// makes them all Finds). With random, each goroutine takes fresh token
// strings drawn at random, as requests from many users bring them (the
// headline workload); without, the committed strings in commit order (the
// -inorder workload). It reports allocations.
func Parallel(b *testing.B, makeStore MakeStore, sessions, commitEvery int, random bool) {
	s := makeStore(b)
	toks := fillN(b, s, sessions)
	probe := toks
	if random {
		probe = freshOrder(toks)
	}
	payload, expiry := benchPayload(), time.Now().Add(time.Hour)
	var goroutines atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(goroutines.Add(1)) * 7919 // each goroutine starts elsewhere
		for ; pb.Next(); i++ {
			tok := probe[i%len(probe)]
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

// freshOrder returns copies of tokens of toks drawn at random, as many as
// toks holds and at least 65,536, each in memory of its own, for a
// benchmark to take in turn: the strings a request parses from its cookie,
// and the order in which requests from many users come. They are made
// before the timed loop, so that neither the copying nor the generator is
// timed, and laid out in the order they are taken, so that reading them
// costs the benchmark no cache miss of its own.
func freshOrder(toks []string) []string {
	probe := make([]string, max(len(toks), 1<<16))
	for i := range probe {
		probe[i] = strings.Clone(toks[rand.IntN(len(toks))])
	}
	return probe
}

// fresh returns a copy of each token of toks, in memory of its own.
func fresh(toks []string) []string {
	c := make([]string, len(toks))
	for i, tok := range toks {
		c[i] = strings.Clone(tok)
	}
	return c
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
