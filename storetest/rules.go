// SPDX-License-Identifier: MIT

package storetest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The clock allowances of the expiry rules. They let a backend with
// one-second expiry granularity pass (scs's redisstore uses PEXPIREAT, to the
// millisecond, but other stores round to whole seconds), and a loaded machine
// never makes a correct store fail.
const (
	shortLife   = 2 * time.Second // the lifetime of sessions the rules wait out
	granularity = time.Second     // how early or late a store may expire a session
	patience    = 5 * time.Second // how much longer Find may go on finding one
	longLife    = time.Hour       // the lifetime of sessions that must stay
)

// rule is one rule of scs's store contract, run as a subtest of its name.
type rule struct {
	name  string
	check func(c *checker)
}

// rules are the rules of scs's store contract, in the order the package
// documentation lists them and Run runs them.
var rules = []rule{
	{"unknown-token-not-found", unknownTokenNotFound},
	{"malformed-token-not-found", malformedTokenNotFound},
	{"round-trip", roundTrip},
	{"overwrite-replaces-data-and-expiry", overwriteReplacesDataAndExpiry},
	{"delete-removes-session", deleteRemovesSession},
	{"delete-unknown-token-is-nil-no-op", deleteUnknownTokenIsNilNoOp},
	{"not-found-after-expiry", notFoundAfterExpiry},
	{"past-expiry-never-found", pastExpiryNeverFound},
	{"all-returns-non-nil-map-of-live-sessions", allReturnsLiveSessions},
	{"ctx-methods-behave-like-plain-ones", ctxMethodsBehaveLikePlainOnes},
	{"concurrent-clients-read-own-writes", concurrentClientsReadOwnWrites},
}

// unknownTokenNotFound: Find of a token never committed gives found == false and a nil error.
func unknownTokenNotFound(c *checker) {
	find := c.plain.find
	unknown := c.token()
	c.mustMiss(find, unknown, "a token never committed, in an empty store")
	c.commit(c.plain.commit, c.token(), data("another session"), time.Now().Add(longLife))
	c.mustMiss(find, unknown, "a token never committed, beside another session")
}

// malformedTokenNotFound: Find of a tampered or malformed token gives found == false and a nil error, and its session stays.
func malformedTokenNotFound(c *checker) {
	find := c.plain.find
	held, want := c.token(), data("held")
	c.commit(c.plain.commit, held, want, time.Now().Add(longLife))

	other := func(ch byte) string {
		if ch == 'A' {
			return "B"
		}
		return "A"
	}
	// Only tokens a cookie can carry: printable ASCII without '"', ';' or '\'.
	for _, m := range []struct{ what, tok string }{
		{"the empty token", ""},
		{"a tampered token (last character changed)", held[:len(held)-1] + other(held[len(held)-1])},
		{"a tampered token (first character changed)", other(held[0]) + held[1:]},
		{"a truncated token", held[:len(held)-1]},
		{"an extended token", held + "A"},
		{"a token with a space", held[:20] + " " + held[21:]},
		{"a glob pattern", "*"},
		{"a glob pattern matching the token", held[:10] + "*"},
		{"a SQL LIKE wildcard", "%"},
		{"a SQL LIKE pattern matching the token", held[:10] + "%"},
		{"a quoted SQL condition", "x' OR 'x'='x"},
		{"a path", "../" + held},
		{"a 4 KiB token", strings.Repeat(held[:32], 128)},
	} {
		c.mustMiss(find, m.tok, m.what+", beside a live session")
	}
	c.mustFind(find, held, want, "a live session, after Finds of tokens made from its own")
}

// roundTrip: Find gives back exactly the bytes committed, binary bytes included, for each of many tokens.
func roundTrip(c *checker) {
	expiry := time.Now().Add(longLife)
	want := make(map[string][]byte)
	for i := range 20 {
		tok := c.token()
		want[tok] = data(fmt.Sprintf("session %d", i))
		c.commit(c.plain.commit, tok, want[tok], expiry)
	}
	bin := c.token()
	want[bin] = binaryData()
	c.commit(c.plain.commit, bin, want[bin], expiry)
	for tok, b := range want {
		c.mustFind(c.plain.find, tok, b, "a live session, one of 21")
	}
}

// overwriteReplacesDataAndExpiry: a second Commit of a token replaces its data (longer or shorter) and its expiry (earlier or later).
func overwriteReplacesDataAndExpiry(c *checker) {
	find, commit := c.plain.find, c.plain.commit
	// Data: longer, shorter, then longer again than what the token held.
	tok := c.token()
	for i, b := range [][]byte{data("first"), []byte("second, short"), data("third, the longest of the three")} {
		c.commit(commit, tok, b, time.Now().Add(longLife))
		c.mustFind(find, tok, b, "a session just committed for the "+[]string{"first", "second", "third"}[i]+" time")
	}

	// Expiry: one session brought forward to expire soon, one pushed back
	// from expiring soon.
	shortened, lengthened := c.token(), c.token()
	c.commit(commit, shortened, data("shortened, v1"), time.Now().Add(longLife))
	expiry := time.Now().Add(shortLife)
	c.commit(commit, lengthened, data("lengthened, v1"), expiry)
	c.commit(commit, shortened, data("shortened, v2"), expiry)
	c.commit(commit, lengthened, data("lengthened, v2"), time.Now().Add(longLife))

	c.awaitGone(find, shortened, expiry,
		fmt.Sprintf("a session committed to live %v, then again to live %v", longLife, shortLife))
	sleepUntil(expiry.Add(granularity + 100*time.Millisecond))
	c.mustFind(find, lengthened, data("lengthened, v2"),
		fmt.Sprintf("a session committed to live %v, then again to live %v, now past the first expiry", shortLife, longLife))
}

// deleteRemovesSession: after Delete the token is not found, and no other session is touched.
func deleteRemovesSession(c *checker) {
	find, commit := c.plain.find, c.plain.commit
	gone, kept := c.token(), c.token()
	keptData := data("kept")
	c.commit(commit, gone, data("deleted"), time.Now().Add(longLife))
	c.commit(commit, kept, keptData, time.Now().Add(longLife))
	c.delete(c.plain.delete, gone, "a live session")
	c.mustMiss(find, gone, "a deleted session")
	c.mustFind(find, kept, keptData, "a live session, after another was deleted")
}

// deleteUnknownTokenIsNilNoOp: Delete of a token that is not held returns nil and changes nothing.
func deleteUnknownTokenIsNilNoOp(c *checker) {
	find, commit, del := c.plain.find, c.plain.commit, c.plain.delete
	c.delete(del, c.token(), "a token never committed, in an empty store,")
	held, want := c.token(), data("held")
	c.commit(commit, held, want, time.Now().Add(longLife))
	unknown := c.token()
	c.delete(del, unknown, "a token never committed, beside a live session,")
	c.mustMiss(find, unknown, "a token deleted without being committed")
	c.mustFind(find, held, want, "a live session, after Delete of a token never committed")

	deleted := c.token()
	c.commit(commit, deleted, data("deleted twice"), time.Now().Add(longLife))
	for _, nth := range []string{"first", "second"} {
		c.delete(del, deleted, "a committed token, for the "+nth+" time,")
	}
	c.mustFind(find, held, want, "a live session, after another was deleted twice")
}

// notFoundAfterExpiry: a session is found before its expiry and not after it.
func notFoundAfterExpiry(c *checker) {
	find := c.plain.find
	tok, want := c.token(), data("expiring")
	start := time.Now()
	expiry := start.Add(shortLife)
	c.commit(c.plain.commit, tok, want, expiry)
	got, found, err := c.find(find, tok)
	if took := time.Since(start); took < shortLife-granularity {
		if err != nil || !found || !bytes.Equal(got, want) {
			c.t.Fatalf("Find(%s) %v before the session's expiry = %s, %v, %v; want %s, true, nil",
				showToken(tok), (shortLife - took).Round(time.Millisecond), show(got), found, err, show(want))
		}
	} else {
		c.t.Logf("the check that a session is found before its expiry was left out: Commit and Find took %v", took)
	}
	what := fmt.Sprintf("a session committed to live %v", shortLife)
	c.awaitGone(find, tok, expiry, what)
	c.mustMiss(find, tok, what+", once not found")
	c.delete(c.plain.delete, tok, "an expired session")
}

// pastExpiryNeverFound: a Commit with an expiry in the past returns nil, and the session is neither found nor listed by All.
func pastExpiryNeverFound(c *checker) {
	find, commit := c.plain.find, c.plain.commit
	gone := make(map[string]string)
	for _, ago := range []time.Duration{time.Second, time.Minute, 24 * time.Hour} {
		fresh := c.token()
		c.commit(commit, fresh, data("fresh"), time.Now().Add(-ago))
		what := fmt.Sprintf("a new token committed with an expiry %v ago", ago)
		c.mustMiss(find, fresh, what)
		gone[fresh] = what

		held := c.token()
		c.commit(commit, held, data("held"), time.Now().Add(longLife))
		c.commit(commit, held, data("held, expired"), time.Now().Add(-ago))
		what = fmt.Sprintf("a live session committed again with an expiry %v ago", ago)
		c.mustMiss(find, held, what)
		gone[held] = what
	}
	if c.plain.all.call != nil {
		c.checkAll(c.plain.all, "after Commits with past expiries", nil, gone)
	}
}

// allReturnsLiveSessions: All gives a non-nil map, even for an empty store, of every live session and no other.
func allReturnsLiveSessions(c *checker) {
	if c.plain.all.call == nil {
		c.t.Skip("the store has no All method (scs's IterableStore)")
	}
	checkListing(c, c.plain)
}

// ctxMethodsBehaveLikePlainOnes: FindCtx, CommitCtx, DeleteCtx and AllCtx, given a live context, do what the plain methods do, on the same sessions.
func ctxMethodsBehaveLikePlainOnes(c *checker) {
	cs, hasCtx := c.s.(ctxStore)
	as, hasAllCtx := c.s.(iterableCtxStore)
	if !hasCtx && !hasAllCtx {
		c.t.Skip("the store has none of FindCtx, CommitCtx, DeleteCtx (scs's CtxStore) and AllCtx (scs's IterableCtxStore)")
	}
	ctx := c.t.Context() // live until the rule ends
	m := c.plain
	if hasCtx {
		m.find = finder{"FindCtx", func(tok string) ([]byte, bool, error) { return cs.FindCtx(ctx, tok) }}
		m.commit = committer{"CommitCtx", func(tok string, b []byte, expiry time.Time) error { return cs.CommitCtx(ctx, tok, b, expiry) }}
		m.delete = deleter{"DeleteCtx", func(tok string) error { return cs.DeleteCtx(ctx, tok) }}
		// With AllCtx, its check below waits for a session committed by
		// CommitCtx to expire: waiting here too would only take longer.
		checkCtxMethods(c, m, !hasAllCtx)
	} else {
		c.t.Log("the store has AllCtx but not all of FindCtx, CommitCtx and DeleteCtx: only AllCtx was checked")
	}
	if hasAllCtx {
		m.all = lister{"AllCtx", func() (map[string][]byte, error) { return as.AllCtx(ctx) }}
		checkListing(c, m)
		if c.plain.all.call != nil {
			compareAll(c, c.plain.all, m.all)
		}
	}
}

// concurrentClientsReadOwnWrites: clients committing and finding on distinct tokens at the same time each read back their own last write.
func concurrentClientsReadOwnWrites(c *checker) {
	const clients, writes = 8, 50
	toks := make([]string, clients)
	for i := range toks {
		toks[i] = c.token()
	}
	last := make([][]byte, clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for w := range writes {
				want := data(fmt.Sprintf("client %d, write %d", i, w))
				var err error
				if !c.guard(fmt.Sprintf("client %d: Commit #%d", i, w), func() { err = c.s.Commit(tok, want, time.Now().Add(longLife)) }) {
					return
				}
				if err != nil {
					c.t.Errorf("client %d: Commit #%d = %v; want nil", i, w, err)
					return
				}
				var got []byte
				var found bool
				if !c.guard(fmt.Sprintf("client %d: Find(%s) after Commit #%d", i, showToken(tok), w), func() { got, found, err = c.s.Find(tok) }) {
					return
				}
				if err != nil || !found || !bytes.Equal(got, want) {
					c.t.Errorf("client %d of %d: Find(%s) right after its Commit #%d = %s, %v, %v; want %s, true, nil",
						i, clients, showToken(tok), w, show(got), found, err, show(want))
					return
				}
				last[i] = want
			}
		}()
	}
	close(start)
	wg.Wait()
	if c.t.Failed() {
		return
	}
	for i, tok := range toks {
		c.mustFind(c.plain.find, tok, last[i], fmt.Sprintf("client %d's session, after all %d clients finished", i, clients))
	}
}

// checkListing checks m.all (All or AllCtx) on sessions committed and deleted
// with m, waiting with m.find for one of them to expire.
func checkListing(c *checker, m methods) {
	c.t.Helper()
	c.checkAll(m.all, "on a fresh store", nil, nil)

	live := map[string][]byte{c.token(): data("live 1"), c.token(): data("live 2")}
	for tok, b := range live {
		c.commit(m.commit, tok, b, time.Now().Add(longLife))
	}
	gone := make(map[string]string)
	expiring, past, deleted := c.token(), c.token(), c.token()
	expiry := time.Now().Add(shortLife)
	for _, s := range []struct {
		tok    string
		expiry time.Time
	}{{expiring, expiry}, {past, time.Now().Add(-time.Minute)}, {deleted, time.Now().Add(longLife)}} {
		c.commit(m.commit, s.tok, data("not live"), s.expiry)
	}
	c.delete(m.delete, deleted, "a live session")
	gone[past] = "committed with an expiry a minute ago"
	gone[deleted] = "deleted"
	c.checkAll(m.all, "holding live, deleted and past-expiry sessions", live, gone)

	what := fmt.Sprintf("a session committed to live %v", shortLife)
	c.awaitGone(m.find, expiring, expiry, what)
	c.mustMiss(c.plain.find, expiring, what+", once not found")
	gone[expiring] = "expired"
	c.checkAll(m.all, "after a session expired", live, gone)

	for tok := range live {
		c.delete(m.delete, tok, "a live session")
		gone[tok] = "deleted"
	}
	c.checkAll(m.all, "after every session was deleted or expired", nil, gone)
}

// checkCtxMethods checks ctx, the Ctx methods, against the plain ones, each
// reading what the other wrote, and, if waitForExpiry, that a session
// committed by CommitCtx expires.
func checkCtxMethods(c *checker, ctx methods, waitForExpiry bool) {
	plain := c.plain
	unknown := c.token()
	c.mustMiss(ctx.find, unknown, "a token never committed")

	viaCtx, viaPlain := c.token(), c.token()
	c.commit(ctx.commit, viaCtx, data("via CommitCtx"), time.Now().Add(longLife))
	c.mustFind(ctx.find, viaCtx, data("via CommitCtx"), "a session committed by CommitCtx")
	c.mustFind(plain.find, viaCtx, data("via CommitCtx"), "a session committed by CommitCtx")
	c.commit(plain.commit, viaPlain, data("via Commit"), time.Now().Add(longLife))
	c.mustFind(ctx.find, viaPlain, data("via Commit"), "a session committed by Commit")

	overwritten := []byte("overwritten by CommitCtx")
	c.commit(ctx.commit, viaPlain, overwritten, time.Now().Add(longLife))
	c.mustFind(ctx.find, viaPlain, overwritten, "a session committed by Commit, then by CommitCtx")
	c.mustFind(plain.find, viaPlain, overwritten, "a session committed by Commit, then by CommitCtx")

	past, held := c.token(), c.token()
	c.commit(ctx.commit, past, data("past"), time.Now().Add(-time.Minute))
	c.mustMiss(ctx.find, past, "a token committed by CommitCtx with an expiry a minute ago")
	c.mustMiss(plain.find, past, "a token committed by CommitCtx with an expiry a minute ago")
	c.commit(plain.commit, held, data("held"), time.Now().Add(longLife))
	c.commit(ctx.commit, held, data("held, expired"), time.Now().Add(-time.Minute))
	c.mustMiss(plain.find, held, "a live session committed again by CommitCtx with an expiry a minute ago")

	c.delete(ctx.delete, unknown, "a token never committed")
	c.delete(ctx.delete, viaPlain, "a live session")
	c.mustMiss(plain.find, viaPlain, "a session deleted by DeleteCtx")
	c.mustMiss(ctx.find, viaPlain, "a session deleted by DeleteCtx")
	c.await(fmt.Sprintf("Delete(%s)", showToken(viaCtx)), func() { _ = c.s.Delete(viaCtx) }) // the delete rules check Delete's error
	c.mustMiss(ctx.find, viaCtx, "a session deleted by Delete")

	if !waitForExpiry {
		return
	}
	expiring, kept := c.token(), c.token()
	c.commit(plain.commit, kept, data("kept"), time.Now().Add(longLife))
	expiry := time.Now().Add(shortLife)
	c.commit(ctx.commit, expiring, data("expiring"), expiry)
	what := fmt.Sprintf("a session committed by CommitCtx to live %v", shortLife)
	c.awaitGone(ctx.find, expiring, expiry, what)
	c.mustMiss(plain.find, expiring, what+", once not found by FindCtx")
	c.mustFind(ctx.find, kept, data("kept"), "a live session, after another expired")
}

// compareAll fails the rule unless plain and withCtx (All and AllCtx) agree
// on a few sessions.
func compareAll(c *checker, plain, withCtx lister) {
	toks := []string{c.token(), c.token(), c.token()}
	for i, tok := range toks {
		c.commit(c.plain.commit, tok, data(tok), time.Now().Add(longLife))
		if i == 2 {
			c.delete(c.plain.delete, tok, "a live session")
		}
	}
	listed := make([]map[string][]byte, 2)
	for i, l := range []lister{plain, withCtx} {
		all, err := c.list(l)
		if err != nil {
			c.t.Fatalf("%s() = %v; want a nil error", l.name, err)
		}
		listed[i] = all
	}
	for _, tok := range toks {
		p, inPlain := listed[0][tok]
		w, inCtx := listed[1][tok]
		if inPlain != inCtx || !bytes.Equal(p, w) {
			c.t.Errorf("for %s, All() holds %s (%v) and AllCtx() %s (%v); want the same", showToken(tok), show(p), inPlain, show(w), inCtx)
		}
	}
}
