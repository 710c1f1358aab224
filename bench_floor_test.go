// SPDX-License-Identifier: MIT

package memstore_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/internal/floor"
)

// BenchmarkFloor measures Find and Commit over held sessions of this store
// beside the floor (internal/floor): the least work a store of this shape
// can do, an ideal Find (hash, one slot, one record, compare; no clock read)
// and an ideal Commit (hash, lock, probe, compare, copy, slot store), with
// nothing else a store needs. Both hold 10,000 and 1,000,000 sessions of
// 128 bytes under random 43-byte tokens, and are handed fresh token strings
// drawn at random, as requests parse them from cookies. Sub-benchmarks are
// named n=SESSIONS/op=OP/store=NAME, so that
//
//	for i in 1 2 3 4 5 6; do go test -run '^$' -bench Floor .; done > floor.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /store floor.txt
//
// gives the ratio to the floor (the loop interleaves the stores, as
// -count would not). The floor's arena fills up as Commit appends; the
// compaction that makes room runs with the timer stopped, as no real
// store's can.
func BenchmarkFloor(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		toks := randomTokens(n)
		data := make([]byte, 128)
		probe := freshProbe(toks)
		expiry := time.Now().Add(time.Hour)
		for _, op := range []string{"find", "commit"} {
			b.Run(fmt.Sprintf("n=%d/op=%s/store=floor", n, op), func(b *testing.B) {
				t := floor.New(n, 43+len(data), n)
				for _, tok := range toks {
					if !t.Commit(tok, data) {
						b.Fatal("the floor refused a Commit while filling")
					}
				}
				b.ReportAllocs()
				if op == "find" {
					for i := 0; b.Loop(); i++ {
						if _, found := t.Find(probe[i%len(probe)]); !found {
							b.Fatal("the floor lost a session")
						}
					}
					return
				}
				for i := 0; b.Loop(); i++ {
					if !t.Commit(probe[i%len(probe)], data) {
						b.StopTimer()
						t.Compact()
						b.StartTimer()
						if !t.Commit(probe[i%len(probe)], data) {
							b.Fatal("the floor refused a Commit after Compact")
						}
					}
				}
			})
			b.Run(fmt.Sprintf("n=%d/op=%s/store=memstore", n, op), func(b *testing.B) {
				m := memstore.New(0)
				defer m.Close()
				for _, tok := range toks {
					if err := m.Commit(tok, data, expiry); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				if op == "find" {
					for i := 0; b.Loop(); i++ {
						if _, found, err := m.Find(probe[i%len(probe)]); err != nil || !found {
							b.Fatalf("Find of a live session = found %v, error %v; want true, nil", found, err)
						}
					}
					return
				}
				for i := 0; b.Loop(); i++ {
					if err := m.Commit(probe[i%len(probe)], data, expiry); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// randomTokens returns n tokens made as scs makes them: 32 random bytes,
// base64, 43 characters.
func randomTokens(n int) []string {
	toks := make([]string, n)
	var raw [32]byte
	for i := range toks {
		rand.Read(raw[:])
		toks[i] = base64.RawURLEncoding.EncodeToString(raw[:])
	}
	return toks
}

// freshProbe returns copies of tokens of toks drawn at random, as many as
// toks holds and at least 65,536, each a string of its own as a request
// parses from its cookie, laid out in the order a benchmark takes them.
func freshProbe(toks []string) []string {
	probe := make([]string, max(len(toks), 1<<16))
	for i := range probe {
		probe[i] = strings.Clone(toks[mrand.IntN(len(toks))])
	}
	return probe
}
