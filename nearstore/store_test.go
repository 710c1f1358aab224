// SPDX-License-Identifier: MIT

package nearstore

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/storetest"
)

func TestStoretest(t *testing.T) {
	srv := startRedis(t)
	storetest.Run(t, func(tb testing.TB) storetest.Store { return newStore(tb, srv) })
}

// TestFindFillsAndHits: a Find of a token not held locally reads Redis and
// fills the local copy; the next Find answers from it.
func TestFindFillsAndHits(t *testing.T) {
	srv := startRedis(t)
	a, b := newStore(t, srv), newStore(t, srv)
	tok := newToken()
	mustCommit(t, a, tok, "one", time.Now().Add(time.Hour))
	waitFor(t, "the invalidation of A's write to reach B", func() bool { return b.Stats().Invalidations == 1 })
	for i := range 3 {
		if got, ok := mustFind(t, b, tok); !ok || got != "one" {
			t.Fatalf("Find %d on B = %q, %v; want \"one\", true", i, got, ok)
		}
	}
	if st := b.Stats(); st.Misses != 1 || st.Hits != 2 {
		t.Errorf("B's Stats: %d misses, %d hits; want 1 and 2", st.Misses, st.Hits)
	}
	// The local copy keeps Redis's expiry.
	if st := b.Stats(); st.Local.Sessions != 1 {
		t.Errorf("B's local copy holds %d sessions; want 1", st.Local.Sessions)
	}
}

// TestWriteOnAReadOnB: once a Commit on A has returned, B never gives the
// old data after the invalidation reaches it, which is within the
// heartbeat timeout.
func TestWriteOnAReadOnB(t *testing.T) {
	srv := startRedis(t)
	a, b := newStore(t, srv), newStore(t, srv)
	tok := newToken()
	mustCommit(t, a, tok, "v0", time.Now().Add(time.Hour))
	for i := 1; i <= 50; i++ {
		if _, ok := mustFind(t, b, tok); !ok { // held locally from now on
			t.Fatal("B does not find the session")
		}
		want := "v" + string(rune('0'+i%10))
		mustCommit(t, a, tok, want, time.Now().Add(time.Hour))
		written := time.Now()
		for {
			got, _ := mustFind(t, b, tok)
			if got == want {
				break
			}
			if since := time.Since(written); since > DefaultHeartbeat {
				t.Fatalf("write %d: B still gives %q %v after A's Commit returned; want %q within %v", i, got, since, want, DefaultHeartbeat)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	if st := b.Stats(); st.Invalidations == 0 {
		t.Errorf("B received no invalidation: %+v", st)
	}
}

// TestChangedElsewhereIsCachedAgain: once B drops a session that A changed,
// B holds the new data locally again. The local copy forgets the token when
// told it changed: it must not refuse the fill as a deleted token.
func TestChangedElsewhereIsCachedAgain(t *testing.T) {
	srv := startRedis(t)
	a, b := newStore(t, srv), newStore(t, srv)
	tok := newToken()
	mustCommit(t, a, tok, "v0", time.Now().Add(time.Hour))
	holdLocally(t, b, tok)
	mustCommit(t, a, tok, "v1", time.Now().Add(time.Hour))
	waitFor(t, "B to give the new data", func() bool {
		got, _ := mustFind(t, b, tok)
		return got == "v1"
	})
	holdLocally(t, b, tok)
	if got, _, _ := b.local.Load().Find(tok); string(got) != "v1" {
		t.Fatalf("B's local copy holds %q; want v1", got)
	}
}

// TestOwnWritesAtOnce: a Store finds its own Commit and Delete at once.
// (Whether its local copy keeps its own writes depends on the server:
// Redis before 7.2 echoes a script's writes even to a NOLOOP subscriber,
// and the copy is then dropped and read again; see docs/nearstore.md.)
func TestOwnWritesAtOnce(t *testing.T) {
	srv := startRedis(t)
	a := newStore(t, srv)
	tok := newToken()
	for i := range 20 {
		want := string(rune('a' + i))
		mustCommit(t, a, tok, want, time.Now().Add(time.Hour))
		if got, ok := mustFind(t, a, tok); !ok || got != want {
			t.Fatalf("Find after Commit %d = %q, %v; want %q", i, got, ok, want)
		}
	}
	t.Logf("20 Commits, each followed by a Find: %d of the Finds read Redis", a.Stats().Misses)
	if err := a.Delete(tok); err != nil {
		t.Fatal(err)
	}
	if got, ok := mustFind(t, a, tok); ok {
		t.Fatalf("Find after Delete = %q, true; want not found", got)
	}
}

// TestFillInvalidatedDuringRead: B reads Redis for a token it does not
// hold; while that read is in flight (between its reply and the fill), A
// changes the session and the invalidation reaches B. B must not cache what
// it read: its next Find gives A's data.
func TestFillInvalidatedDuringRead(t *testing.T) {
	srv := startRedis(t)
	a, b := newStore(t, srv), newStore(t, srv)
	tok := newToken()
	mustCommit(t, a, tok, "old", time.Now().Add(time.Hour))
	waitFor(t, "the invalidation of A's write to reach B", func() bool { return b.Stats().Invalidations == 1 })
	var once sync.Once
	b.afterRead = func(string) {
		once.Do(func() {
			before := b.Stats().Invalidations
			mustCommit(t, a, tok, "new", time.Now().Add(time.Hour))
			waitFor(t, "the invalidation to reach B", func() bool { return b.Stats().Invalidations > before })
		})
	}
	if got, _ := mustFind(t, b, tok); got != "old" {
		t.Fatalf("the racing Find = %q; want \"old\", read before A's Commit", got)
	}
	b.afterRead = nil
	if got, _ := mustFind(t, b, tok); got != "new" {
		t.Fatalf("Find after the race = %q; want \"new\": the fill of \"old\" was kept after its invalidation", got)
	}
	if st := b.Stats(); st.FillsDiscarded != 1 {
		t.Errorf("FillsDiscarded = %d; want 1", st.FillsDiscarded)
	}
}

// TestDeletedStaysDeleted: a request on B loads a session, A deletes it (a
// logout), then B's request ends and commits: the Commit is refused with
// memstore.ErrDeleted, and neither instance finds the session.
func TestDeletedStaysDeleted(t *testing.T) {
	srv := startRedis(t)
	a, b := newStore(t, srv), newStore(t, srv)
	tok := newToken()
	mustCommit(t, a, tok, "logged in", time.Now().Add(time.Hour))
	if _, ok := mustFind(t, b, tok); !ok {
		t.Fatal("B does not find the session")
	}
	if err := a.Delete(tok); err != nil {
		t.Fatal(err)
	}
	err := b.Commit(tok, []byte("slow request"), time.Now().Add(time.Hour))
	if !errors.Is(err, memstore.ErrDeleted) {
		t.Fatalf("B's Commit after A's Delete: %v; want an error wrapping memstore.ErrDeleted", err)
	}
	for name, s := range map[string]*Store{"A": a, "B": b} {
		if got, ok := mustFind(t, s, tok); ok {
			t.Errorf("%s finds %q after the Delete and the refused Commit; want not found", name, got)
		}
	}
	// So is a Commit with a past expiry, a Delete by another name.
	tok2 := newToken()
	mustCommit(t, a, tok2, "x", time.Now().Add(time.Hour))
	mustCommit(t, b, tok2, "x", time.Now().Add(-time.Second))
	if err := a.Commit(tok2, []byte("y"), time.Now().Add(time.Hour)); !errors.Is(err, memstore.ErrDeleted) {
		t.Fatalf("Commit after a Commit with a past expiry: %v; want memstore.ErrDeleted", err)
	}
}

// TestMarkerLastsTheSessionsLife: the marker expires with the deleted
// session, so the token is not refused for ever, and a Delete of an unknown
// token leaves none.
func TestMarkerLastsTheSessionsLife(t *testing.T) {
	srv := startRedis(t)
	a := newStore(t, srv)
	c := srv.client(t)
	tok := newToken()
	mustCommit(t, a, tok, "x", time.Now().Add(time.Hour))
	if err := a.Delete(tok); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.Do(t.Context(), c.B().Pttl().Key("deleted:scs:session:"+tok).Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > time.Hour.Milliseconds() {
		t.Fatalf("the marker's PTTL = %d, %v; want within the hour the session had left", ttl, err)
	}
	unknown := newToken()
	if err := a.Delete(unknown); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(t.Context(), c.B().Exists().Key("deleted:scs:session:"+unknown).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("a Delete of an unknown token left a marker (EXISTS = %d, %v)", n, err)
	}
}
