// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golangcollege/memstore"
)

func TestNoCapByDefault(t *testing.T) {
	t.Parallel()
	for _, m := range []*memstore.MemStore{newStore(t), newCappedStore(t, 0), newCappedStore(t, -1)} {
		big := make([]byte, 1<<20)
		n := sized(8, 64)
		for i := range n {
			mustCommit(t, m, fmt.Sprint(i), big, inAnHour())
		}
		if st := m.Stats(); st.MaxBytes != 0 || st.Sessions != n || st.Evicted != 0 || st.Bytes < int64(n)<<20 {
			t.Fatalf("Stats = %+v; want %d sessions of 1 MiB, no cap, nothing evicted", st, n)
		}
	}
}

func TestBytesAccounting(t *testing.T) {
	t.Parallel()
	m := newStore(t, memstore.WithReusableDeletedTokens()) // sessions alone: deleted_test.go counts remembered deletes
	mustCommit(t, m, "tok", make([]byte, 10), inAnHour())
	if one := m.Stats().Bytes; one < 13 {
		t.Fatalf("Bytes = %d for a 3-byte token and 10 bytes of data; want at least 13", one)
	}
	mustCommit(t, m, "tok", make([]byte, 30), inAnHour())
	mustCommit(t, m, "tok2", make([]byte, 30), inAnHour())
	big := make([]byte, 1<<20) // beyond a shared chunk: held on its own
	mustCommit(t, m, "big", big, inAnHour())
	if got, want := m.Stats().Bytes, int64(3+30+4+30+3+len(big)); got < want {
		t.Fatalf("Bytes = %d with %d bytes of tokens and data held; want at least that", got, want)
	}
	m.Delete("tok")
	m.Delete("big")
	mustCommit(t, m, "tok2", nil, time.Now().Add(-time.Second))
	if st := m.Stats(); st.Bytes != 0 || st.Sessions != 0 {
		t.Fatalf("Stats = %+v after removing everything; want 0 bytes, 0 sessions", st)
	}
}

func TestTooLargeLeavesTheStoreAsItWas(t *testing.T) {
	t.Parallel()
	m := newCappedStore(t, 4096)
	mustCommit(t, m, "tok", []byte("small"), inAnHour())
	mustCommit(t, m, "other", []byte("kept"), inAnHour())
	before := m.Stats()

	for _, token := range []string{"tok", "new"} {
		err := m.Commit(token, make([]byte, 5000), inAnHour())
		if !errors.Is(err, memstore.ErrTooLarge) {
			t.Fatalf("Commit(%q) of 5000 bytes under a 4096-byte cap = %v; want ErrTooLarge", token, err)
		}
	}
	mustFind(t, m, "tok", []byte("small"))
	mustFind(t, m, "other", []byte("kept"))
	mustMiss(t, m, "new")
	if after := m.Stats(); after != before {
		t.Fatalf("Stats = %+v after refused commits; want unchanged %+v", after, before)
	}
}

// TestFlood commits new sessions from several goroutines into a cap, over
// twenty times what it holds: the store must keep working, stay within the
// cap once the Commits stop, and within what WithMaxBytes allows while they
// run (a chunk more for each Commit in flight).
func TestFlood(t *testing.T) {
	var (
		maxBytes = sized[int64](512<<10, 4<<20)
		sessions = sized(40_000, 500_000)
	)
	const workers = 4
	heapBefore := heapAfterGC()
	m := newCappedStore(t, maxBytes)
	data := make([]byte, 200)

	bound := capWhileCommitting(maxBytes, workers)
	var over atomic.Int64 // the first accounted size seen above bound
	var most int64        // the most seen, read once watched is closed
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() { // watch the accounted bytes the whole time
		defer close(watched)
		for {
			st := m.Stats()
			most = max(most, st.Bytes)
			if st.Bytes > bound {
				over.CompareAndSwap(0, st.Bytes)
			}
			select {
			case <-stop:
				return
			default:
				runtime.Gosched()
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < sessions; i += workers {
				if err := m.Commit(fmt.Sprintf("%043d", i), data, inAnHour()); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-watched

	t.Logf("with up to %d Commits in flight, the accounted bytes reached %d, %.3fx the cap", workers, most, float64(most)/float64(maxBytes))
	if b := over.Load(); b != 0 {
		t.Errorf("accounted bytes reached %d with up to %d Commits in flight; want within %d, the cap of %d and a chunk for each",
			b, workers, bound, maxBytes)
	}
	st := m.Stats()
	if st.Bytes > maxBytes || st.Sessions == 0 {
		t.Errorf("Stats = %+v with no Commit in flight; want a non-empty store within the cap", st)
	}
	if st.Evicted != uint64(sessions-st.Sessions) || st.Expired != 0 {
		t.Errorf("Evicted = %d, Expired = %d with %d held of %d committed; want Evicted = %d, Expired = 0",
			st.Evicted, st.Expired, st.Sessions, sessions, sessions-st.Sessions)
	}
	heapGrowth := int64(heapAfterGC()) - int64(heapBefore)
	t.Logf("heap grew by %d bytes, %.2fx the cap", heapGrowth, float64(heapGrowth)/float64(maxBytes))
	if heapGrowth > 3*maxBytes {
		t.Errorf("heap grew by %d bytes; want within 3x the %d-byte cap", heapGrowth, maxBytes)
	}
	runtime.KeepAlive(m)
}

func TestEvictionPrefersSoonestExpiry(t *testing.T) {
	t.Parallel()
	sessions := sized(10_000, 40_000) // four times what the cap holds
	m := newCappedStore(t, int64(sessions)*50)
	data := make([]byte, 100)
	minute, day := time.Now().Add(time.Minute), time.Now().Add(24*time.Hour)
	for i := range sessions {
		expiry := minute
		if i%2 == 1 {
			expiry = day
		}
		mustCommit(t, m, fmt.Sprint(i), data, expiry)
	}
	all, _ := m.All()
	daily := 0
	for i := 1; i < sessions; i += 2 {
		if _, ok := all[fmt.Sprint(i)]; ok {
			daily++
		}
	}
	if len(all) < sessions/8 || daily*5 < len(all)*4 {
		t.Fatalf("%d of the %d sessions held expire in a day; want at least 4 in 5", daily, len(all))
	}
	t.Logf("%d of %d held sessions (%.1f%%) are the one-day half", daily, len(all), 100*float64(daily)/float64(len(all)))
}

func TestExpiredSessionsAreEvictedFirst(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const maxBytes = 1 << 20
		m := newCappedStore(t, maxBytes) // no janitor: only making room removes expired entries
		data := make([]byte, 100)
		for i := 0; m.Stats().Bytes < maxBytes*9/10; i++ {
			mustCommit(t, m, fmt.Sprint("short", i), data, time.Now().Add(shortLife))
		}
		expiring := m.Stats().Sessions
		eventually(t, "expired", func() bool { all, _ := m.All(); return len(all) == 0 })

		// Commit live sessions while at least half of what is held has expired.
		for i := 0; ; i++ {
			st := m.Stats()
			if stillHeld := expiring - int(st.Expired); stillHeld*2 < st.Sessions {
				break
			}
			mustCommit(t, m, fmt.Sprint("live", i), data, inAnHour())
		}
		st := m.Stats()
		if st.Expired == 0 || st.Evicted*20 >= st.Expired+st.Evicted {
			t.Fatalf("%d live and %d expired sessions removed to make room; want under 5%% live", st.Evicted, st.Expired)
		}
	})
}

// TestStatsCountWhatHappened checks the counters against what the test made
// happen: sessions that expired, removed by making room or by the janitor,
// count as Expired; live ones removed for room, as Evicted; nothing counts
// twice or goes uncounted, the counters only grow, and they stop with Close.
//
// It runs in a synctest bubble, so that the expiring sessions have expired,
// and none has been evicted while live, before the flood begins, however slow
// the machine: on the real clock, eviction, which takes the sessions nearest
// their expiry first, could take them all before they expired. Sweep
// timings measure zero on a bubble's clock: the real clock checks them.
func TestStatsCountWhatHappened(t *testing.T) {
	t.Parallel()
	t.Run("counters", func(t *testing.T) {
		synctest.Test(t, testStatsCounters)
	})
	t.Run("sweep timings", func(t *testing.T) {
		m := memstore.New(time.Millisecond)
		defer m.Close()
		for i := range 1000 { // live, so that every pass walks them
			mustCommit(t, m, fmt.Sprint("live", i), make([]byte, 50), inAnHour())
		}
		for i := range 1000 {
			mustCommit(t, m, fmt.Sprint("short", i), make([]byte, 50), time.Now().Add(shortLife))
		}
		// On a loaded machine a short session may expire before its Commit
		// returns, which then deletes it: wait for the store to hold the
		// live ones only, however the others went.
		eventually(t, "swept", func() bool { return m.Len() == 1000 })
		swept := m.Stats().Sweeps
		eventually(t, "a pass over the live sessions", func() bool { return m.Stats().Sweeps > swept })
		st := m.Stats()
		if st.Sessions != 1000 || st.LastSweep <= 0 || st.LastSweepLongestHold <= 0 || st.LastSweepLongestHold > st.LastSweep {
			t.Errorf("Stats = %+v; want 1000 sessions and a timed sweep, its longest hold within it", st)
		}
	})
}

// testStatsCounters is TestStatsCountWhatHappened's part in a synctest
// bubble: the store's clock moves only when the test sleeps.
func testStatsCounters(t *testing.T) {
	const (
		workers    = 4
		sweepEvery = time.Second // passes at 1s, 2s, 3s… on the bubble's clock
	)
	maxBytes := sized[int64](256<<10, 1<<20) // about a quarter of what is committed
	each := sized(1250, 5000)
	m := memstore.New(sweepEvery, memstore.WithMaxBytes(maxBytes))
	defer m.Close()

	// Two sets of sessions that expire, each an eighth of the flood: they
	// fit under the cap, so none is evicted while live. The janitor sweeps
	// the first set at 1s; the second expires at 1.7s, and is still held
	// when the flood begins at 1.8s.
	expiring := workers * each / 8
	commitExpiring := func(set string, life time.Duration) {
		for i := range expiring {
			mustCommit(t, m, fmt.Sprint(set, i), make([]byte, 50), time.Now().Add(life))
		}
	}
	commitExpiring("swept-", 500*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	synctest.Wait()
	if st := m.Stats(); st.Expired != uint64(expiring) || st.Sweeps != 1 || st.Sessions != 0 {
		t.Fatalf("Stats = %+v after one pass; want the first %d expired sessions swept", st, expiring)
	}
	commitExpiring("unswept-", 200*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if all, _ := m.All(); len(all) != 0 || m.Len() != expiring {
		t.Fatalf("Len = %d and All holds %d sessions after they expired; want all %d held, none found",
			m.Len(), len(all), expiring)
	}
	if st := m.Stats(); st.Evicted != 0 || st.Expired != uint64(expiring) || st.Sweeps != 1 {
		t.Fatalf("Stats = %+v before the flood; want no eviction, no more expirations, no more passes", st)
	}

	// A flood of live sessions, more than fits, at once on the bubble's
	// clock: making room removes the expired sessions it meets and evicts
	// live ones.
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() { // counters only grow; Bytes stays within what WithMaxBytes allows
		defer close(watched)
		var last memstore.Stats
		bound := capWhileCommitting(maxBytes, workers)
		for {
			st := m.Stats()
			if st.Expired < last.Expired || st.Evicted < last.Evicted || st.Sweeps < last.Sweeps {
				t.Errorf("counters went back: %+v after %+v", st, last)
			}
			if st.Bytes > bound || st.MaxBytes != maxBytes {
				t.Errorf("Stats = %+v with up to %d Commits in flight; want MaxBytes = %d and Bytes within %d", st, workers, maxBytes, bound)
			}
			last = st
			select {
			case <-stop:
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := m.Commit(fmt.Sprint(w, "-", i), make([]byte, 50), inAnHour()); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-watched

	// The janitor sweeps whatever making room left of the expired sessions.
	time.Sleep(2 * sweepEvery)
	synctest.Wait()
	st := m.Stats()
	if st.Bytes > maxBytes {
		t.Errorf("Stats = %+v with no Commit in flight; want Bytes within MaxBytes", st)
	}
	if all, _ := m.All(); st.Expired != uint64(2*expiring) || st.Sweeps < 3 || len(all) != st.Sessions {
		t.Errorf("Stats = %+v, %d sessions found; want the %d expired sessions counted as Expired, swept, and every session held found",
			st, len(all), 2*expiring)
	}
	if live := workers * each; st.Evicted == 0 || st.Evicted != uint64(live-st.Sessions) {
		t.Errorf("held %d, evicted %d of the %d live sessions committed; want evictions, and every live session held or evicted",
			st.Sessions, st.Evicted, live)
	}

	m.Close()
	closed := m.Stats()
	if closed != st {
		t.Errorf("Stats after Close = %+v; want the counters kept from %+v", closed, st)
	}
	time.Sleep(20 * sweepEvery)
	if later := m.Stats(); later != closed {
		t.Errorf("Stats changed after Close, from %+v to %+v; want no more sweeps", closed, later)
	}
}

// checkCapped reconciles model with a capped store after a step of FuzzOps:
// the cap holds, and every session still held reads back exactly. Sessions
// the store evicted leave the model.
func checkCapped(t *testing.T, m *memstore.MemStore, model map[string][]byte) {
	t.Helper()
	if st := m.Stats(); st.Bytes > st.MaxBytes {
		t.Fatalf("Bytes = %d over the cap of %d", st.Bytes, st.MaxBytes)
	}
	for tok, want := range model {
		got, found, err := m.Find(tok)
		if err != nil || (found && !bytes.Equal(got, want)) {
			t.Fatalf("Find(%q) = %q, %v, %v; want %q or an eviction", tok, got, found, err, want)
		}
		if !found {
			delete(model, tok)
		}
	}
}

// TestEvictionKeepsNoDeletedSessionAlive evicts sessions with large tokens,
// then deletes every session: nothing the store chose or considered for
// eviction keeps a token on the heap.
func TestEvictionKeepsNoDeletedSessionAlive(t *testing.T) {
	tokenSize := sized(64<<10, 1<<20)
	maxBytes := int64(16 * tokenSize)
	token := func(i int) string { return fmt.Sprint(i, strings.Repeat("x", tokenSize)) }
	before := heapAfterGC()
	m := newCappedStore(t, maxBytes)
	for i := range 64 {
		mustCommit(t, m, token(i), []byte("data"), time.Now().Add(time.Duration(i+1)*time.Hour))
	}
	if st := m.Stats(); st.Evicted == 0 {
		t.Fatalf("Stats = %+v; want evictions, for the test to mean anything", st)
	}
	for i := range 64 {
		m.Delete(token(i))
	}
	grown := int64(heapAfterGC()) - int64(before)
	t.Logf("the heap grew by %d bytes", grown)
	if grown > int64(tokenSize/2) {
		t.Fatalf("the heap holds %d bytes more after every session was deleted; want no token kept", grown)
	}
	runtime.KeepAlive(m)
}

// TestReplacingUnderACapNeverHidesTheSession re-commits a few hot sessions
// under caps from 32 KiB to 64 MiB, with colliding hashes or not, while a
// flood of other sessions keeps the store making room, and readers look
// the hot tokens up all the while: a session being replaced must stay
// visible until its new data takes its place. The hot sessions expire last,
// and fewer of them than a sample holds, so eviction never chooses them.
func TestReplacingUnderACapNeverHidesTheSession(t *testing.T) {
	for _, maxBytes := range []int64{32 << 10, 256 << 10, 4 << 20, 64 << 20} {
		for _, collide := range []bool{false, true} {
			t.Run(fmt.Sprintf("cap=%d/collide=%v", maxBytes, collide), func(t *testing.T) {
				t.Parallel()
				opts := []memstore.Option{memstore.WithMaxBytes(maxBytes)}
				if collide {
					opts = append(opts, memstore.WithCollisions())
				}
				m := memstore.New(0, opts...)
				defer m.Close()
				replaceWhileReading(t, m, maxBytes)
			})
		}
	}
}

func replaceWhileReading(t *testing.T, m *memstore.MemStore, maxBytes int64) {
	const hot = 4 // fewer than a sample of five: one in each is a flood's
	hotTokens := make([]string, hot)
	for i := range hotTokens {
		hotTokens[i] = fmt.Sprintf("hot-%039d", i) // 43 bytes: all hash alike under WithCollisions
		mustCommit(t, m, hotTokens[i], []byte("first"), time.Now().Add(48*time.Hour))
	}
	rounds := sized(300, 3000)
	var (
		done   atomic.Bool
		misses atomic.Int64
		finds  atomic.Int64
		wg     sync.WaitGroup
	)
	for r := range 2 { // readers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !done.Load(); i++ {
				token := strings.Clone(hotTokens[i%hot]) // as a request parses it
				if _, found, _ := m.Find(token); !found {
					misses.Add(1)
				}
				finds.Add(1)
			}
		}()
	}
	floodData := make([]byte, max(16, maxBytes/2048))
	i := 0
	for ; m.Stats().Evicted == 0; i++ { // fill the store to its cap first
		mustCommit(t, m, fmt.Sprintf("flood-%d", i), floodData, inAnHour())
	}
	flood := make(chan struct{})
	go func() { // more sessions, so that each replacement has to make room
		defer close(flood)
		for ; !done.Load(); i++ {
			if err := m.Commit(fmt.Sprintf("flood-%d", i), floodData, inAnHour()); err != nil {
				t.Errorf("Commit of a flood session: %v", err)
				return
			}
		}
	}()
	var writers sync.WaitGroup
	for w := range hot {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range rounds {
				data := make([]byte, 1+(i*97)%min(int(maxBytes/16), 20000)) // shared chunks and chunks of their own
				if err := m.Commit(hotTokens[w], data, time.Now().Add(48*time.Hour)); err != nil {
					t.Errorf("Commit(%q): %v", hotTokens[w], err)
					return
				}
			}
		}()
	}
	writers.Wait()
	done.Store(true)
	wg.Wait()
	<-flood
	st := m.Stats()
	if n := misses.Load(); n > 0 {
		t.Errorf("%d of %d Finds of a session being replaced found nothing (Stats %+v)", n, finds.Load(), st)
	}
	if st.Evicted == 0 {
		t.Errorf("nothing evicted (Stats %+v): the cap never made room while sessions were replaced", st)
	}
	for _, token := range hotTokens {
		if _, found, _ := m.Find(token); !found {
			t.Errorf("Find(%q) after the replacements: not found; eviction took a hot session", token)
		}
	}
}

// TestHeapWithinTheCap fills stores under caps with sessions of every size
// from 1 byte to 1 MiB, far past the cap, and measures the heap they hold:
// the cap must bound it, give or take capSlack, whatever the allocator's
// rounding and each chunk's own cost.
func TestHeapWithinTheCap(t *testing.T) {
	const capSlack = 16 << 10
	for _, maxBytes := range []int64{64 << 10, 4 << 20} {
		for _, size := range []int{1, 100, 1000, 4095, 4097, 16 << 10, 32<<10 + 1, 100_000, 1 << 20} {
			data := make([]byte, size)
			if err := newCappedStore(t, maxBytes).Commit("probe", data, inAnHour()); errors.Is(err, memstore.ErrTooLarge) {
				continue // larger than this cap holds
			}
			n := int(2*maxBytes)/(size+43) + 16 // past the cap twice over
			before := heapAfterGC()
			m := memstore.New(0, memstore.WithMaxBytes(maxBytes))
			for i := range n {
				if err := m.Commit(fmt.Sprintf("%043d", i), data, inAnHour()); err != nil {
					t.Fatalf("Commit of %d bytes under a cap of %d: %v", size, maxBytes, err)
				}
			}
			grew := int64(heapAfterGC()) - int64(before)
			st := m.Stats()
			t.Logf("cap %d, sessions of %d bytes: %d held, Bytes %d, heap %d (%.3fx the cap)", maxBytes, size, st.Sessions, st.Bytes, grew, float64(grew)/float64(maxBytes))
			if grew > maxBytes+capSlack || st.Bytes > maxBytes {
				t.Errorf("cap %d, sessions of %d bytes: the heap grew by %d and Bytes = %d; want both within the cap (the heap give or take %d)", maxBytes, size, grew, st.Bytes, capSlack)
			}
			if st.Evicted == 0 {
				t.Errorf("cap %d, sessions of %d bytes: nothing evicted after %d Commits", maxBytes, size, n)
			}
			m.Close()
			runtime.KeepAlive(m)
		}
	}
}
