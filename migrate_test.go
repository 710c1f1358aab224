// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golangcollege/memstore"
)

// migrateSessions is how many live sessions the tests of Sessions and
// CopyTo fill a store with: several of the batches the walk takes its lock
// for (1,024 sessions), and a part batch.
const migrateSessions = 3*1024 + 100

// expiryTolerance is how far a yielded expiry may lie from the one
// committed: the store keeps a remaining lifetime on the monotonic clock and
// turns it back into wall-clock time against a later reading of both clocks.
// In a synctest bubble the two clocks move together, so this covers rounding
// alone.
const expiryTolerance = time.Millisecond

// committed is what a test committed under one token.
type committed struct {
	data   []byte
	expiry time.Time
}

// fillForMigration commits live sessions of varied sizes (the empty one
// included) to store, and as many that expire after a second, and returns
// the live ones by token: a second later, the others have expired.
func fillForMigration(t *testing.T, store *memstore.MemStore, live int) map[string]committed {
	t.Helper()
	now := time.Now()
	want := make(map[string]committed, live)
	for i := range live {
		token := fmt.Sprintf("live-%05d", i)
		s := committed{
			data:   bytes.Repeat([]byte{byte(i)}, i%300),
			expiry: now.Add(time.Hour + time.Duration(i)*time.Second),
		}
		if err := store.Commit(token, s.data, s.expiry); err != nil {
			t.Fatal(err)
		}
		want[token] = s
		if err := store.Commit(fmt.Sprintf("soon-%05d", i), []byte("expires"), now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// checkSession fails t if got is not the session want holds under its token.
func checkSession(t *testing.T, want map[string]committed, got memstore.Session) {
	t.Helper()
	w, ok := want[got.Token]
	if !ok {
		t.Errorf("yielded %q, which is not a live session", got.Token)
		return
	}
	if !bytes.Equal(got.Data, w.data) {
		t.Errorf("%s: data %q; want %q", got.Token, got.Data, w.data)
	}
	if d := got.Expiry.Sub(w.expiry).Abs(); d > expiryTolerance {
		t.Errorf("%s: expiry %v; want %v (off by %v, more than %v)", got.Token, got.Expiry, w.expiry, d, expiryTolerance)
	}
}

func TestSessionsYieldsEveryLiveSessionOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New(0) // no janitor: the expired sessions stay held
		want := fillForMigration(t, store, migrateSessions)
		time.Sleep(2 * time.Second)
		if store.Len() != 2*migrateSessions {
			t.Fatalf("Len = %d; want %d, expired sessions included", store.Len(), 2*migrateSessions)
		}

		seen := make(map[string]int, migrateSessions)
		for s := range store.Sessions() {
			seen[s.Token]++
			checkSession(t, want, s)
		}
		for token := range want {
			if seen[token] != 1 {
				t.Errorf("%s yielded %d times; want once", token, seen[token])
			}
		}
	})
}

func TestSessionsOfAnEmptyStore(t *testing.T) {
	t.Parallel()
	for s := range memstore.New(0).Sessions() {
		t.Errorf("yielded %q from an empty store", s.Token)
	}
}

func TestSessionsStopsWhenTheLoopBreaks(t *testing.T) {
	t.Parallel()
	store := memstore.New(0)
	fillForMigration(t, store, migrateSessions)
	// Within the first batch, at the end of one (where the walk is between
	// batches), and within a later one. Go's runtime panics if the iterator
	// yields again once the loop has broken.
	for _, stopAt := range []int{1, 1024, 1025, 2500} {
		visited := 0
		for range store.Sessions() {
			if visited++; visited == stopAt {
				break
			}
		}
		if visited != stopAt {
			t.Errorf("breaking after %d sessions: the loop ran %d times", stopAt, visited)
		}
	}
}

func TestSessionsReleasesTheStoreWhileTheLoopRuns(t *testing.T) {
	t.Parallel()
	store := memstore.New(0)
	fillForMigration(t, store, migrateSessions)
	visited := 0
	for s := range store.Sessions() {
		visited++
		// Commit and Delete take the write lock: were the read lock held
		// while the loop body runs, each would wait for the loop to end,
		// here from another goroutine and from the body itself.
		done := make(chan error)
		go func() { done <- store.Commit("from-another-goroutine", []byte("x"), time.Now().Add(time.Hour)) }()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := store.Commit(s.Token+"-renewed", s.Data, s.Expiry); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete(s.Token + "-renewed"); err != nil {
			t.Fatal(err)
		}
		if visited == 3 {
			break
		}
	}
}

func TestSessionsDuringRequests(t *testing.T) {
	t.Parallel()
	store := memstore.New(10 * time.Millisecond) // the janitor sweeps during the walk too
	defer store.Close()
	stable := make(map[string][]byte, migrateSessions)
	for i := range migrateSessions {
		token, data := fmt.Sprintf("stable-%05d", i), fmt.Appendf(nil, "data of %d", i)
		store.Commit(token, data, time.Now().Add(time.Hour))
		stable[token] = data
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				token := fmt.Sprintf("churn-%d-%d", w, i%500)
				store.Commit(token, []byte("churn "+token), time.Now().Add(time.Hour))
				store.Find(fmt.Sprintf("stable-%05d", i%migrateSessions))
				store.Commit(fmt.Sprintf("short-%d-%d", w, i%500), []byte("short"), time.Now().Add(time.Millisecond))
				if i%3 == 0 {
					store.Delete(token)
				}
			}
		})
	}

	seen := make(map[string]bool, migrateSessions)
	for range 3 {
		clear(seen)
		for s := range store.Sessions() {
			switch {
			case strings.HasPrefix(s.Token, "stable-"):
				if !bytes.Equal(s.Data, stable[s.Token]) {
					t.Errorf("%s: data %q; want %q", s.Token, s.Data, stable[s.Token])
				}
			case strings.HasPrefix(s.Token, "churn-"):
				if string(s.Data) != "churn "+s.Token {
					t.Errorf("%s: data %q; want %q", s.Token, s.Data, "churn "+s.Token)
				}
			case strings.HasPrefix(s.Token, "short-"):
			default:
				t.Errorf("yielded %q, which was never committed", s.Token)
			}
			if seen[s.Token] {
				t.Errorf("%s yielded twice in one loop", s.Token)
			}
			seen[s.Token] = true
		}
		// The stable sessions were neither rewritten nor deleted: the
		// sessions written around them must not hide one.
		for token := range stable {
			if !seen[token] {
				t.Errorf("%s, committed before the walk and never touched, was not yielded", token)
			}
		}
	}
	close(stop)
	wg.Wait()
}

// TestSessionsOnceWhileTheStoreGrowsAndShrinks has the loop's body grow the
// store eightfold, then empty it back, so that the index is rebuilt larger
// and then smaller between the batches the walk takes.
func TestSessionsOnceWhileTheStoreGrowsAndShrinks(t *testing.T) {
	t.Parallel()
	store := memstore.New(0)
	const held = 1500 // two batches of the walk, and many more while the flood is held
	for i := range held {
		if err := store.Commit(fmt.Sprint("held-", i), nil, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	const flood = 8 * migrateSessions
	seen := make(map[string]int, held)
	for s := range store.Sessions() {
		seen[s.Token]++
		switch len(seen) {
		case 100:
			for i := range flood {
				if err := store.Commit(fmt.Sprint("flood-", i), nil, time.Now().Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
		case held / 2:
			for i := range flood {
				if err := store.Delete(fmt.Sprint("flood-", i)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for token, n := range seen {
		if n > 1 {
			t.Errorf("%s yielded %d times", token, n)
		}
	}
	all, _ := store.All()
	for token := range all {
		if seen[token] == 0 {
			t.Errorf("%s, held throughout, was not yielded", token)
		}
	}
	if len(all) != held {
		t.Errorf("the store holds %d sessions after the flood came and went; want %d", len(all), held)
	}
}

func TestSessionsAfterClose(t *testing.T) {
	t.Parallel()
	store := memstore.New(time.Minute)
	expiry := time.Now().Add(time.Hour)
	store.Commit("token", []byte("data"), expiry)
	store.Close()
	var got []memstore.Session
	for s := range store.Sessions() {
		got = append(got, s)
	}
	if len(got) != 1 || got[0].Token != "token" || string(got[0].Data) != "data" || got[0].Expiry.Sub(expiry).Abs() > time.Second {
		t.Errorf("after Close, Sessions yielded %+v; want the one session, expiring at %v", got, expiry)
	}
}

func TestCopyTo(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		src := memstore.New(0)
		want := fillForMigration(t, src, migrateSessions)
		time.Sleep(2 * time.Second)

		dst := memstore.New(0)
		copied, err := src.CopyTo(dst)
		if err != nil || copied != migrateSessions {
			t.Fatalf("CopyTo = %d, %v; want %d, nil", copied, err, migrateSessions)
		}
		if dst.Len() != migrateSessions {
			t.Errorf("the target holds %d sessions; want the %d live ones", dst.Len(), migrateSessions)
		}
		for s := range dst.Sessions() {
			checkSession(t, want, s)
		}
		if src.Len() != 2*migrateSessions {
			t.Errorf("the source holds %d sessions after the copy; want the %d it held", src.Len(), 2*migrateSessions)
		}
	})
}

func TestCopyToStopsWhereTheTargetFails(t *testing.T) {
	t.Parallel()
	src := memstore.New(0)
	fillForMigration(t, src, 50)
	small := src.Len() // live ones and those that expire in a second, unexpired yet
	// A session larger than the target's cap is one the target refuses,
	// whenever the copy meets it.
	if err := src.Commit("large", make([]byte, 2<<20), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	before, beforeStats := sessionsOf(src), src.Stats()

	dst := memstore.New(0, memstore.WithMaxBytes(1<<20))
	copied, err := src.CopyTo(dst)
	if !errors.Is(err, memstore.ErrCopyIncomplete) || !errors.Is(err, memstore.ErrTooLarge) {
		t.Fatalf("CopyTo = %d, %v; want an error wrapping ErrCopyIncomplete and the target's ErrTooLarge", copied, err)
	}
	if count := fmt.Sprintf("%d sessions copied", copied); !strings.Contains(err.Error(), count) {
		t.Errorf("CopyTo's error %q does not say %q", err, count)
	}
	if copied > small || dst.Len() != copied {
		t.Errorf("CopyTo reports %d sessions copied, and the target holds %d; want the same count, at most the %d small ones", copied, dst.Len(), small)
	}
	if after := sessionsOf(src); !sameSessions(before, after) || src.Stats() != beforeStats {
		t.Errorf("the source changed: %d sessions and %+v before the copy, %d and %+v after", len(before), beforeStats, len(after), src.Stats())
	}
}

// sessionsOf returns what store.Sessions yields, by token.
func sessionsOf(store *memstore.MemStore) map[string]memstore.Session {
	all := make(map[string]memstore.Session)
	for s := range store.Sessions() {
		all[s.Token] = s
	}
	return all
}

// sameSessions reports whether a and b hold the same sessions: the same data
// and, within expiryTolerance, the same expiry.
func sameSessions(a, b map[string]memstore.Session) bool {
	if len(a) != len(b) {
		return false
	}
	for token, s := range a {
		o, ok := b[token]
		if !ok || !bytes.Equal(s.Data, o.Data) || s.Expiry.Sub(o.Expiry).Abs() > expiryTolerance {
			return false
		}
	}
	return true
}

// Moving to another store: CopyTo commits every live session, with its
// expiry, to any store with scs's Commit (here, another MemStore; in
// production, scs's redisstore or postgresstore).
func ExampleMemStore_CopyTo() {
	old := memstore.New(0)
	old.Commit("alice", []byte("cart: 2 books"), time.Now().Add(time.Hour))
	old.Commit("bob", []byte("logged in"), time.Now().Add(24*time.Hour))

	target := memstore.New(0)
	copied, err := old.CopyTo(target)
	fmt.Println(copied, err)

	b, found, _ := target.Find("alice")
	fmt.Printf("%s %v\n", b, found)
	// Output:
	// 2 <nil>
	// cart: 2 books true
}

// Sessions yields every live session with its data and expiry.
func ExampleMemStore_Sessions() {
	store := memstore.New(0)
	store.Commit("alice", []byte("cart: 2 books"), time.Now().Add(time.Hour))
	store.Commit("bob", []byte("logged in"), time.Now().Add(24*time.Hour))
	store.Commit("carol", []byte("gone"), time.Now().Add(-time.Second)) // expired: a Delete

	var lines []string
	for s := range store.Sessions() {
		lines = append(lines, fmt.Sprintf("%s %q expires in %v", s.Token, s.Data, time.Until(s.Expiry).Round(time.Minute)))
	}
	slices.Sort(lines) // Sessions yields in no particular order
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// alice "cart: 2 books" expires in 1h0m0s
	// bob "logged in" expires in 24h0m0s
}
