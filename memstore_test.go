// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golangcollege/memstore"
)

// The interfaces below repeat, method for method, the ones *MemStore must
// satisfy; the library itself imports nothing outside the standard library.

// scsStore is scs v2's Store.
type scsStore interface {
	Delete(token string) (err error)
	Find(token string) (b []byte, found bool, err error)
	Commit(token string, b []byte, expiry time.Time) (err error)
}

// scsIterableStore is scs v2's IterableStore.
type scsIterableStore interface {
	All() (map[string][]byte, error)
}

// scsCtxStore is scs v2's CtxStore.
type scsCtxStore interface {
	scsStore
	DeleteCtx(ctx context.Context, token string) (err error)
	FindCtx(ctx context.Context, token string) (b []byte, found bool, err error)
	CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) (err error)
}

// scsIterableCtxStore is scs v2's IterableCtxStore.
type scsIterableCtxStore interface {
	AllCtx(ctx context.Context) (map[string][]byte, error)
}

// engine is the original scs session.Engine that the first memstore served.
type engine interface {
	Delete(token string) (err error)
	Find(token string) (b []byte, found bool, err error)
	Save(token string, b []byte, expiry time.Time) (err error)
}

var (
	_ scsStore            = (*memstore.MemStore)(nil)
	_ scsIterableStore    = (*memstore.MemStore)(nil)
	_ scsCtxStore         = (*memstore.MemStore)(nil)
	_ scsIterableCtxStore = (*memstore.MemStore)(nil)
	_ engine              = (*memstore.MemStore)(nil)
	_ io.Closer           = (*memstore.MemStore)(nil)
)

func TestFindUnknownToken(t *testing.T) {
	t.Parallel()
	mustMiss(t, newStore(t), "nobody")
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	mustCommit(t, m, "tok", []byte("hello"), inAnHour())
	mustFind(t, m, "tok", []byte("hello"))
	if err := m.Save("saved", []byte("engine"), inAnHour()); err != nil {
		t.Fatalf("Save: %v", err)
	}
	mustFind(t, m, "saved", []byte("engine"))
}

func TestCommitKeepsAPrivateCopy(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	buf := []byte("original")
	mustCommit(t, m, "tok", buf, inAnHour())
	copy(buf, "XXXXXXXX")
	mustFind(t, m, "tok", []byte("original"))
}

func TestFoundSliceCannotBeAppendedIntoTheStore(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	buf := make([]byte, 5, 64) // spare capacity the store must not inherit
	copy(buf, "hello")
	mustCommit(t, m, "tok", buf, inAnHour())

	got, _, _ := m.Find("tok")
	if cap(got) != len(got) {
		t.Fatalf("stored slice has len %d, cap %d; want cap == len", len(got), cap(got))
	}
	grown := append(got, " world"...)
	grown[0] = 'J' // writes into the new array, never the store's
	mustFind(t, m, "tok", []byte("hello"))
}

func TestFindAndAllDoNotCopy(t *testing.T) {
	m := newStore(t)
	mustCommit(t, m, "tok", []byte("hello"), inAnHour())
	first, _, _ := m.Find("tok")
	second, _, _ := m.Find("tok")
	all, _ := m.All()
	if &first[0] != &second[0] || &first[0] != &all["tok"][0] {
		t.Fatal("Find and All returned different arrays for the same session; want the stored one")
	}
	if allocs := testing.AllocsPerRun(100, func() { m.Find("tok") }); allocs != 0 {
		t.Fatalf("Find allocates %v times per call; want 0", allocs)
	}
}

func TestCommitAllocatesOnlyTheCopy(t *testing.T) {
	m := newStore(t)
	data, expiry := []byte("some session data"), inAnHour()
	mustCommit(t, m, "tok", data, expiry)
	if allocs := testing.AllocsPerRun(100, func() { m.Commit("tok", data, expiry) }); allocs > 1 {
		t.Fatalf("Commit over an existing token allocates %v times; want at most 1, for the copy", allocs)
	}
}

func TestExpiryAtOrBeforeNowDeletes(t *testing.T) {
	t.Parallel()
	for name, expiry := range map[string]time.Time{
		"zero time":      {},
		"an hour ago":    time.Now().Add(-time.Hour),
		"now":            time.Now(),
		"past, UTC only": time.Now().Add(-time.Second).UTC(),
	} {
		t.Run(name, func(t *testing.T) {
			m := newStore(t)
			mustCommit(t, m, "held", []byte("old"), inAnHour())
			mustCommit(t, m, "held", []byte("new"), expiry)
			mustCommit(t, m, "fresh", []byte("new"), expiry)
			mustMiss(t, m, "held")
			mustMiss(t, m, "fresh")
			if n := m.Len(); n != 0 {
				t.Fatalf("Len = %d after committing only past expiries; want 0", n)
			}
		})
	}
}

func TestOverwriteReplacesDataAndExpiry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := newStore(t)

		mustCommit(t, m, "shortened", []byte("v1"), inAnHour())
		committed := time.Now()
		mustCommit(t, m, "shortened", []byte("v2"), committed.Add(shortLife))
		if got, _, _ := m.Find("shortened"); time.Since(committed) < shortLife && string(got) != "v2" {
			t.Fatalf("Find(shortened) = %q before its new expiry; want v2", got)
		}

		mustCommit(t, m, "lengthened", []byte("v1"), time.Now().Add(shortLife))
		mustCommit(t, m, "lengthened", []byte("v2"), inAnHour())

		eventually(t, "expired after its shortened lifetime", func() bool {
			_, found, _ := m.Find("shortened")
			return !found
		})
		mustFind(t, m, "lengthened", []byte("v2"))
	})
}

func TestExpiredSessionIsNeverFound(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := newStore(t)
		// scs passes expiries through .UTC(), which strips the monotonic reading.
		mustCommit(t, m, "tok", []byte("data"), time.Now().Add(shortLife).UTC())
		eventually(t, "expired", func() bool {
			_, found, _ := m.Find("tok")
			return !found
		})
		mustMiss(t, m, "tok")
		if all, _ := m.All(); len(all) != 0 {
			t.Fatalf("All = %v after expiry; want empty", all)
		}
		if n := m.Len(); n != 1 {
			t.Fatalf("Len = %d; want 1: without a janitor an expired entry stays until removed", n)
		}
	})
}

func TestFarFutureExpiry(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	for _, expiry := range []time.Time{
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Unix(1<<62, 0), // beyond what a Duration can hold
	} {
		mustCommit(t, m, "tok", []byte("forever"), expiry)
		mustFind(t, m, "tok", []byte("forever"))
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	if err := m.Delete("unknown"); err != nil {
		t.Fatalf("Delete(unknown) = %v; want nil", err)
	}
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	mustCommit(t, m, "other", []byte("kept"), inAnHour())
	if err := m.Delete("tok"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustMiss(t, m, "tok")
	mustFind(t, m, "other", []byte("kept"))
	if n := m.Len(); n != 1 {
		t.Fatalf("Len = %d; want 1", n)
	}
}

func TestEmptyTokenAndNilData(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	mustCommit(t, m, "", []byte("anonymous"), inAnHour())
	mustFind(t, m, "", []byte("anonymous"))

	for _, data := range [][]byte{nil, {}} {
		mustCommit(t, m, "empty", data, inAnHour())
		got, found, err := m.Find("empty")
		if got == nil || len(got) != 0 || !found || err != nil {
			t.Fatalf("Find after Commit(%#v) = %#v, %v, %v; want []byte{}, true, nil", data, got, found, err)
		}
	}
}

func TestAll(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := newStore(t)
		all, err := m.All()
		if all == nil || len(all) != 0 || err != nil {
			t.Fatalf("All on an empty store = %#v, %v; want an empty non-nil map", all, err)
		}

		const live = 1000 // several batches
		for i := range live {
			mustCommit(t, m, fmt.Sprint("live", i), []byte(fmt.Sprint(i)), inAnHour())
		}
		mustCommit(t, m, "short", []byte("gone soon"), time.Now().Add(shortLife))
		eventually(t, "expired", func() bool { _, found, _ := m.Find("short"); return !found })

		all, _ = m.All()
		if len(all) != live {
			t.Fatalf("All holds %d sessions; want the %d live ones", len(all), live)
		}
		for i := range live {
			if got := all[fmt.Sprint("live", i)]; string(got) != fmt.Sprint(i) {
				t.Fatalf("All[live%d] = %q; want %q", i, got, fmt.Sprint(i))
			}
		}
		delete(all, "live0")
		mustFind(t, m, "live0", []byte("0"))
		if again, _ := m.All(); len(again) != live {
			t.Fatalf("second All holds %d sessions; want %d: each call returns a new map", len(again), live)
		}
	})
}

func TestCtxMethods(t *testing.T) {
	t.Parallel()
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	timedOut, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	t.Run("live context behaves like the plain methods", func(t *testing.T) {
		m := newStore(t)
		if err := m.CommitCtx(live, "tok", []byte("data"), inAnHour()); err != nil {
			t.Fatal(err)
		}
		if b, found, err := m.FindCtx(live, "tok"); string(b) != "data" || !found || err != nil {
			t.Fatalf("FindCtx = %q, %v, %v", b, found, err)
		}
		if all, err := m.AllCtx(live); len(all) != 1 || err != nil {
			t.Fatalf("AllCtx = %v, %v", all, err)
		}
		if err := m.DeleteCtx(live, "tok"); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, m, "tok")
		if err := m.CommitCtx(live, "tok", []byte("data"), time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, m, "tok")
	})

	for name, ctx := range map[string]context.Context{"cancelled": cancelled, "past deadline": timedOut} {
		t.Run(name+" context changes nothing", func(t *testing.T) {
			m := newStore(t)
			mustCommit(t, m, "tok", []byte("data"), inAnHour())
			checks := map[string]error{
				"CommitCtx":           m.CommitCtx(ctx, "tok", []byte("other"), inAnHour()),
				"CommitCtx new token": m.CommitCtx(ctx, "new", []byte("other"), inAnHour()),
				"DeleteCtx":           m.DeleteCtx(ctx, "tok"),
			}
			b, found, err := m.FindCtx(ctx, "tok")
			if b != nil || found {
				t.Errorf("FindCtx = %q, %v; want nil, false", b, found)
			}
			checks["FindCtx"] = err
			all, err := m.AllCtx(ctx)
			if all != nil {
				t.Errorf("AllCtx = %v; want nil", all)
			}
			checks["AllCtx"] = err
			for method, err := range checks {
				if err != ctx.Err() {
					t.Errorf("%s = %v; want %v", method, err, ctx.Err())
				}
			}
			mustFind(t, m, "tok", []byte("data"))
			mustMiss(t, m, "new")
		})
	}
}

func TestStoreWorksAfterClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := memstore.New(time.Millisecond)
		m.Close()
		mustCommit(t, m, "tok", []byte("data"), inAnHour())
		mustFind(t, m, "tok", []byte("data"))
		mustCommit(t, m, "short", []byte("data"), time.Now().Add(shortLife))
		eventually(t, "expired", func() bool { _, found, _ := m.Find("short"); return !found })
		if all, _ := m.All(); len(all) != 1 {
			t.Fatalf("All after Close = %v; want only the live session", all)
		}
		if n := m.Len(); n != 2 {
			t.Fatalf("Len = %d; want 2: after Close nothing sweeps the expired session", n)
		}
		if err := m.Delete("tok"); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, m, "tok")
	})
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	m := memstore.New(time.Millisecond)
	defer m.Close()
	const workers, ops = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			own := fmt.Sprint("own", w) // only this worker writes it
			for i := range ops {
				shared := fmt.Sprint("shared", rng.IntN(50))
				switch rng.IntN(10) {
				case 0:
					m.Commit(shared, []byte(shared), time.Now().Add(time.Duration(rng.IntN(3))*time.Millisecond))
				case 1:
					m.Delete(shared)
				case 2:
					m.All()
				case 3:
					m.Len()
				default:
					if b, found, _ := m.Find(shared); found && string(b) != shared {
						t.Errorf("Find(%q) = %q", shared, b)
					}
				}
				want := []byte(fmt.Sprint(i))
				m.Commit(own, want, inAnHour())
				if got, found, err := m.Find(own); !found || err != nil || !bytes.Equal(got, want) {
					t.Errorf("Find(%q) = %q, %v, %v; want %q", own, got, found, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// fuzzTokens is how many tokens FuzzOps commits and deletes.
const fuzzTokens = 40

// FuzzOps drives random sequences of operations against a store and a plain
// map, and checks that they agree after every step. Each operation takes
// three bytes: what to do, which of fuzzTokens tokens, and a data length:
// enough tokens that the index grows and shrinks several times over. Commits
// with an expiry at or before now (the "expired" subset) must act as deletes.
// A non-zero maxBytes caps the store: then the cap must hold, a refused
// Commit must change nothing, and every session still held must read back
// exactly (see checkCapped). With collide, the tokens' hashes collide (see
// memstore.WithCollisions), and every session must still be found,
// overwritten and deleted on its own. A token deleted while it held a
// session, by Delete or by an expired Commit, stays deleted: a live Commit of
// it must be refused with ErrDeleted and change nothing (under a cap, the
// store may have forgotten it to stay within the cap: then it is committed).
func FuzzOps(f *testing.F) {
	grow := []byte{}
	for i := range fuzzTokens { // every token committed, then deleted: the index grows, then shrinks
		grow = append(grow, 0, byte(i), byte(i))
	}
	for i := range fuzzTokens {
		grow = append(grow, 4, byte(i), 0)
	}
	f.Add(uint16(0), false, grow)
	f.Add(uint16(4000), true, grow)
	f.Add(uint16(0), false, []byte{0, 1, 5, 5, 1, 0, 4, 1, 0, 2, 1, 0})
	f.Add(uint16(0), false, []byte{0, 0, 0, 1, 0, 3, 5, 0, 0, 6, 0, 0, 7, 0, 0})
	f.Add(uint16(0), false, []byte{0, 2, 200, 0, 2, 1, 3, 2, 0, 4, 2, 0})
	f.Add(uint16(1000), false, []byte{0, 1, 200, 0, 2, 200, 0, 3, 200, 0, 4, 200, 5, 0, 0, 6, 0, 0})
	f.Add(uint16(200), false, []byte{0, 1, 10, 0, 1, 255, 0, 2, 10, 5, 0, 0})
	f.Add(uint16(0), true, []byte{0, 1, 5, 0, 4, 6, 0, 7, 7, 4, 1, 0, 5, 0, 0, 0, 4, 9, 2, 7, 0, 6, 0, 0})
	f.Add(uint16(1000), true, []byte{0, 1, 200, 0, 4, 200, 0, 7, 200, 0, 2, 200, 5, 0, 0, 4, 4, 0, 6, 0, 0})
	f.Add(uint16(0), false, []byte{0, 1, 5, 4, 1, 0, 0, 1, 5, 2, 2, 0, 0, 2, 0, 0, 2, 1, 3, 2, 0, 0, 2, 3, 5, 0, 0})
	f.Add(uint16(4000), true, []byte{0, 1, 50, 4, 1, 0, 0, 1, 50, 0, 4, 50, 3, 4, 1, 1, 4, 9, 6, 0, 0})
	f.Fuzz(func(t *testing.T, maxBytes uint16, collide bool, ops []byte) {
		opts := []memstore.Option{memstore.WithMaxBytes(int64(maxBytes))}
		if collide {
			opts = append(opts, memstore.WithCollisions())
		}
		m := memstore.New(0, opts...)
		defer m.Close()
		model := map[string][]byte{}
		deleted := map[string]bool{} // tokens deleted while they held a session
		past := []time.Time{{}, time.Now().Add(-time.Hour), time.Now().Add(-time.Nanosecond)}
		for len(ops) >= 3 {
			op, token, size := ops[0]%7, fmt.Sprint("tok", int(ops[1])%fuzzTokens), int(ops[2])
			ops = ops[3:]
			data := bytes.Repeat([]byte{byte(size)}, size)
			switch op {
			case 0, 1: // commit, live
				err := m.Commit(token, data, inAnHour())
				switch {
				case err == nil && deleted[token] && maxBytes == 0:
					t.Fatalf("Commit(%q) of a deleted token = nil; want ErrDeleted", token)
				case err == nil:
					model[token] = data
					delete(deleted, token) // forgotten under the cap
				case errors.Is(err, memstore.ErrDeleted) && deleted[token]:
				case maxBytes == 0 || !errors.Is(err, memstore.ErrTooLarge):
					t.Fatalf("Commit(%q) of %d bytes: %v", token, size, err)
				}
				if maxBytes > 0 {
					checkCapped(t, m, model)
				}
			case 2, 3: // commit, already expired
				mustCommit(t, m, token, data, past[size%len(past)])
				if _, held := model[token]; held {
					deleted[token] = true
				}
				delete(model, token)
			case 4:
				if err := m.Delete(token); err != nil {
					t.Fatal(err)
				}
				if _, held := model[token]; held {
					deleted[token] = true
				}
				delete(model, token)
				if maxBytes > 0 {
					checkCapped(t, m, model) // remembering may have evicted sessions
				}
			case 5:
				all, err := m.All()
				if err != nil || len(all) != len(model) {
					t.Fatalf("All = %d sessions, %v; want %d", len(all), err, len(model))
				}
				for tok, want := range model {
					if got, ok := all[tok]; !ok || !bytes.Equal(got, want) {
						t.Fatalf("All[%q] = %q, %v; want %q", tok, got, ok, want)
					}
				}
			case 6:
				if n := m.Len(); n != len(model) {
					t.Fatalf("Len = %d; want %d", n, len(model))
				}
			}
			for tok, want := range model {
				mustFind(t, m, tok, want)
			}
			for i := range fuzzTokens {
				tok := fmt.Sprint("tok", i)
				if _, held := model[tok]; !held {
					mustMiss(t, m, tok)
				}
			}
		}
	})
}

func TestNewIgnoresANilOption(t *testing.T) {
	t.Parallel()
	m := memstore.New(0, nil, memstore.WithMaxBytes(1<<20), nil)
	defer m.Close()
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	if got := m.Stats().MaxBytes; got != 1<<20 {
		t.Errorf("Stats().MaxBytes = %d; want the option after the nil one applied, 1 MiB", got)
	}
}
