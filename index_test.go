// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// TestFindDuringEveryKindOfWrite reads a set of sessions that never change
// while writers make the index grow and shrink again and again, delete,
// overwrite (leaving chunks to compact) and let sessions expire under a
// janitor that sweeps every millisecond: every read of a steady session must
// find its data, and a read of a changing one must find nothing or data
// that the token was committed with, never another token's. Run with -race,
// it checks that Find, which takes no lock, reads only what writers
// published.
func TestFindDuringEveryKindOfWrite(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]memstore.Option{nil, {memstore.WithMaxBytes(256 << 10)}, {memstore.WithCollisions()}} {
		m := memstore.New(time.Millisecond, append(opts, memstore.WithReusableDeletedTokens())...) // the writers reuse their tokens
		defer m.Close()
		steadyCount, changing, rounds := 200, 4000, 3
		if len(opts) > 0 {
			steadyCount, changing = 20, 300 // a cap holds fewer; colliding tokens are probed one by one
		}
		steady := make([]string, steadyCount)
		for i := range steady {
			steady[i] = fmt.Sprint("steady", i)
			mustCommit(t, m, steady[i], []byte(steady[i]), time.Now().Add(24*time.Hour))
		}
		capped := len(opts) > 0 && m.Stats().MaxBytes > 0

		var done atomic.Bool
		var readers sync.WaitGroup
		for r := range 2 {
			readers.Add(1)
			go func() {
				defer readers.Done()
				rng := rand.New(rand.NewPCG(uint64(r), 7))
				for reads := 0; !done.Load() || reads < 1000; reads++ {
					tok := steady[rng.IntN(len(steady))]
					got, found, _ := m.Find(tok)
					if !capped && (!found || string(got) != tok) {
						t.Errorf("Find(%q) = %q, %v; want its data", tok, got, found)
						return
					}
					if found && string(got) != tok {
						t.Errorf("Find(%q) = %q; want its own data", tok, got)
						return
					}
					tok = fmt.Sprint("changing", rng.IntN(changing))
					if got, found, _ := m.Find(tok); found && !bytes.HasPrefix(got, []byte(tok+"/")) {
						t.Errorf("Find(%q) = %q; want data committed under that token", tok, got)
						return
					}
				}
			}()
		}
		var writers sync.WaitGroup
		for w := range 2 {
			writers.Add(1)
			go func() {
				defer writers.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 8))
				for round := range rounds {
					for i := w; i < changing; i += 2 { // grow
						tok := fmt.Sprint("changing", i)
						life := time.Hour
						if rng.IntN(4) == 0 {
							life = time.Duration(rng.IntN(3)) * time.Millisecond // for the janitor
						}
						data := fmt.Appendf(nil, "%s/%d/%s", tok, round, bytes.Repeat([]byte{'x'}, rng.IntN(300)))
						if err := m.Commit(tok, data, time.Now().Add(life)); err != nil {
							t.Errorf("Commit: %v", err)
							return
						}
					}
					for i := w; i < changing; i += 2 { // shrink
						if err := m.Delete(fmt.Sprint("changing", i)); err != nil {
							t.Errorf("Delete: %v", err)
							return
						}
					}
				}
			}()
		}
		writers.Wait()
		done.Store(true)
		readers.Wait()
		if st := m.Stats(); st.Sessions > len(steady) || (!capped && st.Sessions != len(steady)) {
			t.Fatalf("Stats = %+v after every changing session was deleted; want %d sessions", st, len(steady))
		}
	}
}

// TestMemoryComesBackAfterAFlood holds a flood of sessions, then deletes
// them: the index shrinks with them, so that the heap and Stats.Bytes come
// back to about what the sessions left need.
func TestMemoryComesBackAfterAFlood(t *testing.T) {
	flood := sized(20_000, 200_000)
	kept := flood / 200
	before := heapAfterGC()
	m := newStore(t, memstore.WithReusableDeletedTokens()) // the index's memory alone: deleted_test.go counts remembered deletes
	data := make([]byte, 20)
	for i := range flood {
		mustCommit(t, m, scsToken(i), data, inAnHour())
	}
	full := m.Stats().Bytes
	for i := kept; i < flood; i++ {
		m.Delete(scsToken(i))
	}
	st := m.Stats()
	grown := int64(heapAfterGC()) - int64(before)
	t.Logf("Bytes %d with %d sessions, %d with %d; the heap grew by %d", full, flood, st.Bytes, st.Sessions, grown)
	if st.Sessions != kept || st.Bytes > full/20 {
		t.Fatalf("Stats = %+v after deleting all but %d sessions, from %d bytes; want under a twentieth", st, kept, full)
	}
	if grown > st.Bytes+1<<20 {
		t.Fatalf("the heap grew by %d bytes with %d held; want within 1 MiB of it", grown, st.Bytes)
	}
	for i := range kept {
		mustFind(t, m, scsToken(i), data)
	}
	for i := kept; i < flood; i++ {
		m.Delete(scsToken(i)) // an unknown token: nothing to do
	}
	for i := range kept {
		m.Delete(scsToken(i))
	}
	if st := m.Stats(); st.Bytes != 0 || st.Sessions != 0 {
		t.Fatalf("Stats = %+v with every session deleted; want nothing held", st)
	}
	runtime.KeepAlive(m)
}

// TestOneTokenChurnLeavesNoDeadSpace commits and deletes one token again and
// again beside a few hundred steady sessions, without a janitor: each chunk
// empties while it is being written to, and must still be dropped once the
// next takes over, so that the store holds at most twice its live bytes
// plus 1 MiB and the index. Under a cap, the same churn must evict none of
// the steady sessions: the dead bytes go first.
func TestOneTokenChurnLeavesNoDeadSpace(t *testing.T) {
	t.Parallel()
	const steady = 500
	churn := sized(20_000, 200_000)
	data := make([]byte, 200)
	for _, maxBytes := range []int64{0, sized[int64](1<<20, 4<<20)} { // a cap a fifth of what is churned
		t.Run(fmt.Sprint("cap=", maxBytes), func(t *testing.T) {
			m := newCappedStore(t, maxBytes, memstore.WithReusableDeletedTokens()) // one token, committed and deleted by turns
			for i := range steady {
				mustCommit(t, m, scsToken(i), data, inAnHour())
			}
			live := int64(steady * (43 + 200 + 3))
			for i := range churn {
				mustCommit(t, m, "churned", data, inAnHour())
				m.Delete("churned")
				if i%2_000 != 0 {
					continue
				}
				bound := 2*live + 1<<20 + 64<<10
				if maxBytes > 0 {
					bound = maxBytes // dead bytes may fill it, to be compacted as room is needed
				}
				if st := m.Stats(); st.Bytes > bound || st.Evicted != 0 {
					t.Fatalf("after %d rounds: Stats = %+v with %d live bytes; want at most %d, nothing evicted", i, st, live, bound)
				}
			}
			for i := range steady {
				mustFind(t, m, scsToken(i), data)
			}
		})
	}
}

// TestTinySessionsStayUnderTheCap floods a cap with sessions of no data,
// whose index entries weigh as much as their records, then with sessions of
// 4 KB: the accounted bytes never pass the cap, and the heap stays within a
// quarter more, whatever the index held at the height of the flood.
func TestTinySessionsStayUnderTheCap(t *testing.T) {
	maxBytes := sized[int64](1<<20, 2<<20)
	before := heapAfterGC()
	m := newCappedStore(t, maxBytes)
	for i := range sized(40_000, 150_000) {
		mustCommit(t, m, scsToken(i), nil, inAnHour())
		if i%1000 == 0 {
			if st := m.Stats(); st.Bytes > maxBytes {
				t.Fatalf("Stats = %+v; the cap is %d", st, maxBytes)
			}
		}
	}
	tiny := m.Stats()
	large := make([]byte, 4000)
	for i := range maxBytes / 1000 {
		mustCommit(t, m, fmt.Sprint("large", i), large, inAnHour())
	}
	st := m.Stats()
	grown := int64(heapAfterGC()) - int64(before)
	t.Logf("%d tiny sessions held in %d bytes; then %d in %d; the heap grew by %d", tiny.Sessions, tiny.Bytes, st.Sessions, st.Bytes, grown)
	if st.Bytes > maxBytes || st.Sessions == 0 {
		t.Fatalf("Stats = %+v; want sessions held within the cap", st)
	}
	if grown > maxBytes*5/4 {
		t.Fatalf("the heap grew by %d bytes; want within 1.25 times the %d-byte cap", grown, maxBytes)
	}
	runtime.KeepAlive(m)
}
