// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golangcollege/memstore"
)

// mustRefuse fails the test unless a Commit of token is refused with
// ErrDeleted and leaves the store as it was.
func mustRefuse(t testing.TB, m *memstore.MemStore, token string) {
	t.Helper()
	before := m.Stats()
	err := m.Commit(token, []byte("brought back"), inAnHour())
	if !errors.Is(err, memstore.ErrDeleted) {
		t.Fatalf("Commit(%q) of a deleted token = %v; want an error wrapping ErrDeleted", token, err)
	}
	mustMiss(t, m, token)
	after := m.Stats()
	if after.Sessions != before.Sessions || after.Bytes != before.Bytes || after.RefusedCommits != before.RefusedCommits+1 {
		t.Fatalf("a refused Commit changed the store: Stats %+v, then %+v", before, after)
	}
}

func TestCommitAfterDeleteIsRefused(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	mustCommit(t, m, "kept", []byte("k"), inAnHour())
	mustCommit(t, m, "tok", []byte("logged in"), inAnHour())
	if err := m.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, m, "tok")
	mustRefuse(t, m, "tok") // and again: a refusal does not use the token up
	if err := m.Commit("kept", []byte("k2"), inAnHour()); err != nil {
		t.Fatalf("Commit of another token: %v", err)
	}
	if st := m.Stats(); st.DeletedTokens != 1 || st.RefusedCommits != 2 {
		t.Errorf("Stats = %+v; want DeletedTokens 1, RefusedCommits 2", st)
	}
	all, _ := m.All()
	sessions := 0
	for range m.Sessions() {
		sessions++
	}
	if len(all) != 1 || sessions != 1 || m.Len() != 1 {
		t.Errorf("All = %d sessions, Sessions yields %d, Len = %d; want the live one alone", len(all), sessions, m.Len())
	}
	if err := m.Delete("tok"); err != nil { // a deleted token deleted again
		t.Fatal(err)
	}
	mustRefuse(t, m, "tok")
}

func TestCommitWithPastExpiryIsADeleteThatStays(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	mustCommit(t, m, "tok", []byte("logged in"), inAnHour())
	mustCommit(t, m, "tok", []byte("x"), time.Now().Add(-time.Second))
	mustRefuse(t, m, "tok")
	if err := m.CommitCtx(t.Context(), "tok", []byte("y"), inAnHour()); !errors.Is(err, memstore.ErrDeleted) {
		t.Errorf("CommitCtx of a deleted token = %v; want ErrDeleted", err)
	}
}

func TestOnlyADeleteOfAHeldSessionIsRemembered(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	if err := m.Delete("never"); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, m, "past", nil, time.Now().Add(-time.Hour)) // a past Commit of an unknown token
	if st := m.Stats(); st.DeletedTokens != 0 || st.Bytes != 0 {
		t.Errorf("Stats = %+v after deleting unknown tokens; want nothing remembered, 0 bytes", st)
	}
	mustCommit(t, m, "never", []byte("a"), inAnHour())
	mustCommit(t, m, "past", []byte("b"), inAnHour())
	mustFind(t, m, "never", []byte("a"))
	mustFind(t, m, "past", []byte("b"))
}

func TestReusableDeletedTokens(t *testing.T) {
	t.Parallel()
	m := newStore(t, memstore.WithReusableDeletedTokens())
	mustCommit(t, m, "tok", []byte("one"), inAnHour())
	if err := m.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, m, "tok", []byte("two"), inAnHour())
	mustFind(t, m, "tok", []byte("two"))
	if st := m.Stats(); st.DeletedTokens != 0 {
		t.Errorf("Stats().DeletedTokens = %d with WithReusableDeletedTokens; want 0", st.DeletedTokens)
	}
}

// TestDeletedTokenIsFreeAfterItsDeadline runs on a synctest bubble's clock,
// which the store reads.
func TestDeletedTokenIsFreeAfterItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newStore(t)
		mustCommit(t, m, "tok", []byte("logged in"), time.Now().Add(time.Minute))
		time.Sleep(30 * time.Second)
		if err := m.Delete("tok"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(29 * time.Second)
		mustRefuse(t, m, "tok") // a second before the session's deadline
		time.Sleep(2 * time.Second)
		mustCommit(t, m, "tok", []byte("new"), time.Now().Add(time.Minute))
		mustFind(t, m, "tok", []byte("new"))
		if st := m.Stats(); st.DeletedTokens != 0 {
			t.Errorf("Stats().DeletedTokens = %d after the token was committed again; want 0", st.DeletedTokens)
		}

		// A session that had expired when deleted leaves nothing to refuse.
		mustCommit(t, m, "old", []byte("x"), time.Now().Add(time.Second))
		time.Sleep(2 * time.Second)
		m.Delete("old")
		mustCommit(t, m, "old", []byte("y"), time.Now().Add(time.Minute))
	})
}

// TestJanitorForgetsExpiredDeletedTokens deletes enough sessions that the
// janitor sweeps the remembered tokens in several batches.
func TestJanitorForgetsExpiredDeletedTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5000
		m := memstore.New(time.Minute)
		defer m.Close()
		for i := range n {
			mustCommit(t, m, scsToken(i), []byte("data"), time.Now().Add(time.Duration(1+i%10)*time.Minute))
		}
		for i := range n {
			m.Delete(scsToken(i))
		}
		st := m.Stats()
		if st.Sessions != 0 || st.DeletedTokens != n || st.Bytes < 16*n {
			t.Fatalf("Stats = %+v after deleting %d sessions; want none held, %d tokens remembered in at least %d bytes", st, n, n, 16*n)
		}
		time.Sleep(5*time.Minute + time.Second) // a sweep after half the deadlines
		synctest.Wait()
		half := m.Stats()
		if half.DeletedTokens != n/2 || half.Bytes >= st.Bytes && half.DeletedTokens == n {
			t.Fatalf("Stats = %+v after half the deadlines and a sweep; want %d remembered", half, n/2)
		}
		for i := range n { // every token that stayed is still found, after the removals around it
			if i%10 >= 5 {
				mustRefuse(t, m, scsToken(i))
			} else {
				mustCommit(t, m, scsToken(i), nil, time.Now().Add(time.Minute))
				m.Delete(scsToken(i))
			}
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if end := m.Stats(); end.DeletedTokens != 0 || end.Bytes != 0 || end.DeletedTokensDropped != 0 {
			t.Fatalf("Stats = %+v once every deadline has passed; want nothing remembered or dropped, 0 bytes", end)
		}
	})
}

// TestDeletedTokensStayWithinTheirShareOfTheCap deletes far more sessions
// than a 16th of the cap remembers: those deleted last, whose deadlines are
// the latest, stay remembered.
func TestDeletedTokensStayWithinTheirShareOfTheCap(t *testing.T) {
	t.Parallel()
	const maxBytes, n = 1 << 20, 20_000
	m := newCappedStore(t, maxBytes)
	for i := range n {
		tok := scsToken(i)
		mustCommit(t, m, tok, []byte("data"), time.Now().Add(time.Hour+time.Duration(i)*time.Second))
		if err := m.Delete(tok); err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); st.Bytes > maxBytes {
			t.Fatalf("Stats = %+v; over the cap", st)
		}
	}
	st := m.Stats()
	if st.DeletedTokensDropped == 0 || st.DeletedTokens+int(st.DeletedTokensDropped) != n || st.Bytes > maxBytes/8 {
		t.Fatalf("Stats = %+v after %d deletes under a cap of %d; want some dropped, the rest remembered, within a 16th of the cap and a chunk", st, n, maxBytes)
	}
	mustRefuse(t, m, scsToken(n-1))
	mustCommit(t, m, scsToken(0), []byte("forgotten"), inAnHour())
}

func TestOpenForgetsDeletedTokensAndReplaysReusedOnes(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m, err := memstore.Open(dir, 0, memstore.WithReusableDeletedTokens())
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, m, "reused", []byte("one"), inAnHour())
	m.Delete("reused")
	mustCommit(t, m, "reused", []byte("two"), inAnHour())
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m, err = memstore.Open(dir, 0) // remembering deletes: the log's re-commit still replays
	if err != nil {
		t.Fatal(err)
	}
	mustFind(t, m, "reused", []byte("two"))
	if err := m.Delete("reused"); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, m, "reused")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m, err = memstore.Open(dir, 0) // a restart forgets: no request of before it is in flight
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mustMiss(t, m, "reused")
	mustCommit(t, m, "reused", []byte("three"), inAnHour())
}

func TestReadFromSkipsDeletedTokens(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	mustCommit(t, m, "out", []byte("logged in"), inAnHour())
	mustCommit(t, m, "in", []byte("still"), inAnHour())
	var snap bytes.Buffer
	if _, err := m.WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	m.Delete("out")
	m.Delete("in")
	mustCommit(t, m, "in", nil, time.Now().Add(-time.Second))
	if _, err := m.ReadFrom(&snap); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, m, "out")
	mustMiss(t, m, "in")

	other := newStore(t) // a store that deleted nothing restores both
	snap.Reset()
	mustCommit(t, m, "fresh", []byte("f"), inAnHour())
	if _, err := m.WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ReadFrom(&snap); err != nil {
		t.Fatal(err)
	}
	mustFind(t, other, "fresh", []byte("f"))
}

// TestDeletedStaysDeletedUnderConcurrency races Commits against the Delete
// of each token: once Delete has returned, no Commit that starts after it
// succeeds, and Find never sees the session again.
func TestDeletedStaysDeletedUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]memstore.Option{nil, {memstore.WithMaxBytes(1 << 20)}, {memstore.WithCollisions()}} {
		m := memstore.New(time.Millisecond, opts...)
		defer m.Close()
		const workers, tokens = 4, 200
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range tokens {
					tok := fmt.Sprint("w", w, "-", i)
					mustCommit(t, m, tok, []byte(tok), inAnHour())
					var racers sync.WaitGroup
					racers.Go(func() { // a request that loaded the session, ending as it is deleted
						if err := m.Commit(tok, []byte(tok), inAnHour()); err != nil && !errors.Is(err, memstore.ErrDeleted) {
							t.Errorf("Commit(%q) racing its Delete: %v", tok, err)
						}
					})
					if err := m.Delete(tok); err != nil {
						t.Error(err)
					}
					racers.Wait()
					if err := m.Delete(tok); err != nil { // the racer may have committed before the Delete
						t.Error(err)
					}
					if err := m.Commit(tok, []byte("late"), inAnHour()); !errors.Is(err, memstore.ErrDeleted) {
						t.Errorf("Commit(%q) after its Delete = %v; want ErrDeleted", tok, err)
					}
					if _, found, _ := m.Find(tok); found {
						t.Errorf("Find(%q) after its Delete found it", tok)
					}
				}
			})
		}
		wg.Wait()
		if st := m.Stats(); st.Sessions != 0 || st.DeletedTokens+int(st.DeletedTokensDropped) != workers*tokens {
			t.Errorf("Stats = %+v; want no session, and every token remembered or dropped", st)
		}
	}
}
