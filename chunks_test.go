// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golangcollege/memstore"
)

// TestSessionsGiveTheCollectorNothingToScan holds 20,000 sessions (200,000
// under -long), 200 bytes of token and data each, and checks that the heap
// the garbage collector scans for pointers grew by next to nothing: the work
// of every collection stays the same however many sessions the store holds.
// A map of strings and slices would add over 50 bytes a session to scan.
func TestSessionsGiveTheCollectorNothingToScan(t *testing.T) {
	sessions := sized(20_000, 200_000)
	data := make([]byte, 157)
	before := scannableHeap()
	m := newStore(t)
	for i := range sessions {
		mustCommit(t, m, scsToken(i), data, inAnHour())
	}
	grown := int64(scannableHeap()) - int64(before)
	if grown > int64(sessions)*5 {
		t.Errorf("the scannable heap grew by %d bytes holding %d sessions; want under 5 bytes a session", grown, sessions)
	}
	t.Logf("scannable heap grew by %d bytes for %d sessions (%.2f bytes each)", grown, sessions, float64(grown)/float64(sessions))
	runtime.KeepAlive(m)
}

// TestBytesBoundTheHeap checks that Stats.Bytes counts at least what the
// store really takes on the heap, so that a cap bounds it.
func TestBytesBoundTheHeap(t *testing.T) {
	for _, sessions := range []int{1_000, sized(20_000, 100_000)} {
		t.Run(fmt.Sprint(sessions), func(t *testing.T) {
			before := heapAfterGC()
			m := newStore(t)
			for i := range sessions {
				mustCommit(t, m, scsToken(i), make([]byte, 157), inAnHour())
			}
			grown := int64(heapAfterGC()) - int64(before)
			accounted := m.Stats().Bytes
			if grown > accounted+64<<10 { // the margin: what the test itself allocates
				t.Errorf("the heap grew by %d bytes; Stats.Bytes = %d", grown, accounted)
			}
			t.Logf("heap: %.1f bytes a session; accounted: %.1f", float64(grown)/float64(sessions), float64(accounted)/float64(sessions))
			runtime.KeepAlive(m)
		})
	}
}

// TestFoundSlicesOutliveTheirSessions keeps the slices Find returned while
// every session is overwritten, deleted and moved by compaction many times
// over: they keep their bytes, and under -race no one writes to them.
func TestFoundSlicesOutliveTheirSessions(t *testing.T) {
	t.Parallel()
	const sessions = 2000
	m := newStore(t, memstore.WithReusableDeletedTokens()) // deleted tokens are committed again
	kept := make([][]byte, sessions)
	for i := range sessions {
		mustCommit(t, m, scsToken(i), bytes.Repeat([]byte{byte(i)}, 200), inAnHour())
		kept[i], _, _ = m.Find(scsToken(i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range sized(15, 40) {
		for i := range sessions {
			switch {
			case i%10 == 0 || rng.IntN(2) == 0: // left alone: chunks stay partly live, to be compacted
				continue
			case i%7 == round%7:
				m.Delete(scsToken(i))
			default:
				mustCommit(t, m, scsToken(i), bytes.Repeat([]byte{byte(round)}, 100+i%150), inAnHour())
			}
		}
	}
	if st := m.Stats(); st.Compactions == 0 {
		t.Fatalf("Stats = %+v; want compactions, for the test to mean anything", st)
	}
	for i, b := range kept {
		if !bytes.Equal(b, bytes.Repeat([]byte{byte(i)}, 200)) {
			t.Fatalf("the slice Find returned for session %d changed", i)
		}
	}
}

// TestDeadBytesStayBounded overwrites sessions with data of random sizes and
// deletes some, without a janitor: what the store holds stays within twice
// the live bytes, plus 1 MiB and the index, as WithMaxBytes documents.
func TestDeadBytesStayBounded(t *testing.T) {
	t.Parallel()
	const sessions = 5000
	rng := rand.New(rand.NewPCG(1, 2))
	// Deleted tokens are committed again.
	m := newStore(t, memstore.WithReusableDeletedTokens())
	held := map[int]int{} // session → data length
	for round := range sized(6, 30) {
		for range sessions {
			i := rng.IntN(sessions)
			if rng.IntN(10) == 0 {
				m.Delete(scsToken(i))
				delete(held, i)
				continue
			}
			held[i] = rng.IntN(400)
			mustCommit(t, m, scsToken(i), make([]byte, held[i]), inAnHour())
		}
		var live int64
		for _, n := range held {
			live += 43 + int64(n) + 3 // the token, the data and the lengths before them
		}
		st := m.Stats()
		if bound := 2*live + 1<<20 + 64<<10 + int64(len(held))*64; st.Bytes > bound {
			t.Fatalf("round %d: Bytes = %d with %d live bytes in %d sessions; want at most %d", round, st.Bytes, live, len(held), bound)
		}
	}
	if st := m.Stats(); st.Compactions == 0 {
		t.Fatalf("Stats = %+v; want compactions", st)
	}
}

// TestJanitorCompactsHalfDeadChunks lets every other session expire: the
// janitor removes them and then compacts the chunks they leave half dead, so
// that the store holds little more than the live sessions.
func TestJanitorCompactsHalfDeadChunks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sessions := sized(5_000, 20_000)
		m := memstore.New(time.Second)
		defer m.Close()
		data := make([]byte, 157)
		for i := range sessions {
			expiry := inAnHour()
			if i%2 == 0 {
				expiry = time.Now().Add(time.Minute)
			}
			mustCommit(t, m, scsToken(i), data, expiry)
		}
		full := m.Stats()
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		st := m.Stats()
		if st.Sessions != sessions/2 || st.Expired != uint64(sessions/2) || st.Compactions == 0 {
			t.Fatalf("Stats = %+v; want %d sessions left, as many expired, and compactions", st, sessions/2)
		}
		if st.Bytes > full.Bytes*6/10 {
			t.Fatalf("Bytes = %d after half the sessions expired, from %d; want little more than half", st.Bytes, full.Bytes)
		}
		for i := 1; i < sessions; i += 2 {
			mustFind(t, m, scsToken(i), data)
		}
	})
}

// TestCapHoldsUnderChurn overwrites and deletes sessions of random sizes
// under a cap, from several goroutines: while they run, the accounted bytes
// stay within what WithMaxBytes allows (a chunk more for each Commit in
// flight in the others), within the cap once they stop, and the heap within
// a small multiple of it.
func TestCapHoldsUnderChurn(t *testing.T) {
	const workers = 4
	maxBytes := sized[int64](1<<20, 4<<20)
	ops := sized(7_500, 30_000) // each goroutine's, over as many tokens: about four times what the cap holds
	bound := capWhileCommitting(maxBytes, workers-1)
	heapBefore := heapAfterGC()
	m := newCappedStore(t, maxBytes, memstore.WithReusableDeletedTokens()) // the workers reuse their tokens
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			rng := rand.New(rand.NewPCG(uint64(w), 0))
			for range ops {
				token := scsToken(rng.IntN(ops))
				if rng.IntN(8) == 0 {
					m.Delete(token)
				} else if err := m.Commit(token, make([]byte, rng.IntN(600)), inAnHour()); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
				if st := m.Stats(); st.Bytes > bound {
					t.Errorf("Bytes = %d with up to %d Commits in flight; want within %d, the cap of %d and a chunk for each",
						st.Bytes, workers-1, bound, maxBytes)
					return
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	if st := m.Stats(); st.Bytes > maxBytes {
		t.Errorf("Bytes = %d with no Commit in flight; want within the cap of %d", st.Bytes, maxBytes)
	}
	if grown := int64(heapAfterGC()) - int64(heapBefore); grown > 2*maxBytes {
		t.Errorf("the heap grew by %d bytes; want within twice the %d-byte cap", grown, maxBytes)
	}
	st := m.Stats()
	if st.Evicted == 0 || st.Compactions == 0 {
		t.Errorf("Stats = %+v; want evictions and compactions, for the test to mean anything", st)
	}
	runtime.KeepAlive(m)
}

// TestCollidingTokensStayApart makes the hashes of many tokens collide and
// checks that each session is still found, overwritten, deleted, swept,
// compacted and saved on its own.
func TestCollidingTokensStayApart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := memstore.New(time.Second, memstore.WithCollisions(), memstore.WithReusableDeletedTokens())
		defer m.Close()
		sessions := sized(200, 600)
		want := map[string][]byte{}
		for round := range 30 { // enough overwrites for compactions
			for i := range sessions {
				token := fmt.Sprint("t", i) // lengths 2 to 4: three hashes
				switch {
				case i%5 == 2 && round > 0: // left alone, so that chunks stay partly live
				case i%5 == 0 && round == 29:
					mustCommit(t, m, token, []byte("short-lived"), time.Now().Add(time.Minute))
					delete(want, token)
				case i%5 == 1 && round%2 == 1:
					m.Delete(token)
					delete(want, token)
				default:
					want[token] = bytes.Repeat([]byte{byte(round), byte(i)}, 50+i%100)
					mustCommit(t, m, token, want[token], inAnHour())
				}
			}
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		mustHoldExactly(t, m, want)
		if st := m.Stats(); st.Expired != uint64(sessions/5) || st.Compactions == 0 {
			t.Fatalf("Stats = %+v; want %d expired and compactions", st, sessions/5)
		}

		restored := memstore.New(0, memstore.WithCollisions())
		defer restored.Close()
		restore(t, restored, snapshot(t, m))
		mustHoldExactly(t, restored, want)
	})
}
