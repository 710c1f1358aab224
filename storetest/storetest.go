// SPDX-License-Identifier: MIT

package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/gob"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Store is the method set of scs v2's Store interface
// (github.com/alexedwards/scs/v2.Store), repeated here so that any scs store
// satisfies it without importing this package or scs.
//
// Run and Bench also use, when a store has them, the methods of scs's
// optional interfaces, found by type assertion:
//
//	// IterableStore
//	All() (map[string][]byte, error)
//	// CtxStore
//	FindCtx(ctx context.Context, token string) (b []byte, found bool, err error)
//	CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) (err error)
//	DeleteCtx(ctx context.Context, token string) (err error)
//	// IterableCtxStore
//	AllCtx(ctx context.Context) (map[string][]byte, error)
type Store interface {
	// Delete removes the session token and its data. Deleting a token that
	// does not exist is a no-op that returns nil.
	Delete(token string) (err error)

	// Find returns the data of the session token. A token that is unknown,
	// expired, tampered with or malformed gives found == false and a nil
	// error; the error is for system errors only.
	Find(token string) (b []byte, found bool, err error)

	// Commit stores the session token with its data until expiry, replacing
	// the data and expiry of a token that already exists.
	Commit(token string, b []byte, expiry time.Time) (err error)
}

// iterableStore is scs's IterableStore.
type iterableStore interface {
	All() (map[string][]byte, error)
}

// ctxStore is the part of scs's CtxStore beyond Store.
type ctxStore interface {
	DeleteCtx(ctx context.Context, token string) (err error)
	FindCtx(ctx context.Context, token string) (b []byte, found bool, err error)
	CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) (err error)
}

// iterableCtxStore is scs's IterableCtxStore.
type iterableCtxStore interface {
	AllCtx(ctx context.Context) (map[string][]byte, error)
}

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

// rules are the rules of scs's store contract, each run as a subtest of that
// name. The package documentation lists them.
var rules = []struct {
	name  string
	check func(c *checker)
}{
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

// Run checks the store that newStore returns against every rule of scs's
// store contract, in one subtest per rule named after it (the package
// documentation lists them). Rules that need an optional method the store does
// not have (All, the Ctx methods) are skipped.
//
// Each subtest calls newStore itself, with its own t, so each rule gets a
// fresh store; register closing it with t.Cleanup inside newStore. Before
// that cleanup runs, the subtest deletes every session it committed. A fresh
// store need not be empty: the rules use random tokens of their own and never
// assume they are the store's only sessions.
//
// Run takes about ten seconds, most of it waiting for sessions to expire.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Helper()
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned a nil Store")
			}
			c := &checker{t: t, s: s}
			t.Cleanup(c.deleteTokens) // registered after newStore's cleanups, so it runs before them
			r.check(c)
		})
	}
}

// checker is one subtest's view of the store under test.
type checker struct {
	t *testing.T
	s Store

	mu     sync.Mutex
	tokens []string // every token handed out, deleted when the subtest ends
}

// token returns a new random token, shaped like scs's (32 random bytes in
// unpadded URL-safe base64: 43 characters), to be deleted when the subtest
// ends.
func (c *checker) token() string {
	tok := newToken()
	c.mu.Lock()
	c.tokens = append(c.tokens, tok)
	c.mu.Unlock()
	return tok
}

// newToken returns 43 characters of base64 from crypto/rand, as scs's tokens.
func newToken() string {
	var b [32]byte
	rand.Read(b[:]) // never returns an error: it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// deleteTokens deletes every token handed out, so that a shared backend is left
// as it was. Errors are ignored: rules report them.
func (c *checker) deleteTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tok := range c.tokens {
		_ = c.s.Delete(tok) // rules report Delete's errors; this is only tidying up
	}
}

// session returns data shaped like a real scs session: what scs's default
// GobCodec makes of a deadline and a map of values.
func session(deadline time.Time, values map[string]any) []byte {
	aux := &struct {
		Deadline time.Time
		Values   map[string]any
	}{deadline, values}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&aux); err != nil {
		panic(fmt.Sprintf("storetest: encoding a session: %v", err))
	}
	return buf.Bytes()
}

// data returns a session whose one value is label: sessions made with
// different labels differ, and the same label always gives the same bytes.
func data(label string) []byte {
	return session(time.Date(2035, time.May, 1, 12, 0, 0, 0, time.UTC), map[string]any{"label": label})
}

// binaryData returns data holding every byte value, twice.
func binaryData() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(255 - i)
	}
	return b
}

// show formats data for a failure message. Of a long slice it shows the end,
// where a gob-encoded session's values are.
func show(b []byte) string {
	switch {
	case b == nil:
		return "nil"
	case len(b) <= 48:
		return fmt.Sprintf("%q", b)
	default:
		return fmt.Sprintf("%d bytes ending %q", len(b), b[len(b)-32:])
	}
}

// showToken formats a token for a failure message.
func showToken(tok string) string {
	if len(tok) <= 64 {
		return fmt.Sprintf("%q", tok)
	}
	return fmt.Sprintf("%q... (%d characters)", tok[:32], len(tok))
}

// finder is the signature of Find and of FindCtx with its context bound.
type finder func(token string) ([]byte, bool, error)

// commit commits b under tok until expiry and fails the subtest on an error.
func (c *checker) commit(tok string, b []byte, expiry time.Time) {
	c.t.Helper()
	if err := c.s.Commit(tok, b, expiry); err != nil {
		c.t.Fatalf("Commit(%s, %s, %v) = %v; want nil", tok, show(b), expiry, err)
	}
}

// mustFind fails the subtest unless find, the method called name, gives tok's
// data as want. what describes the session.
func (c *checker) mustFind(name string, find finder, tok string, want []byte, what string) {
	c.t.Helper()
	got, found, err := find(tok)
	if err != nil || !found || !bytes.Equal(got, want) {
		c.t.Fatalf("%s(%s) of %s = %s, %v, %v; want %s, true, nil", name, showToken(tok), what, show(got), found, err, show(want))
	}
}

// mustMiss fails the subtest unless find, the method called name, reports tok
// not found with a nil error. what describes the token.
func (c *checker) mustMiss(name string, find finder, tok, what string) {
	c.t.Helper()
	got, found, err := find(tok)
	if err != nil || found {
		c.t.Fatalf("%s(%s) of %s = %s, %v, %v; want found == false and a nil error", name, showToken(tok), what, show(got), found, err)
	}
}

// awaitGone polls find, the method called name, until it stops finding tok,
// committed to expire at expiry, and fails the subtest if it still finds it
// granularity+patience after expiry. what describes the session. A slow
// machine never makes it fail: it reads the clock before it calls find.
func (c *checker) awaitGone(name string, find finder, tok string, expiry time.Time, what string) {
	c.t.Helper()
	deadline := expiry.Add(granularity + patience)
	for {
		late := time.Now().After(deadline)
		got, found, err := find(tok)
		if err != nil {
			c.t.Fatalf("%s(%s) of %s, while waiting for it to expire, = %s, %v, %v; want a nil error",
				name, showToken(tok), what, show(got), found, err)
		}
		if !found {
			return
		}
		if late {
			c.t.Fatalf("%s(%s) of %s still finds it %v after its expiry; want found == false (%v allowed)",
				name, showToken(tok), what, time.Since(expiry).Round(time.Millisecond), granularity+patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sleepUntil sleeps until the wall clock reaches when.
func sleepUntil(when time.Time) {
	time.Sleep(time.Until(when))
}

// checkAll fails the subtest unless all, what the method called name (All or
// AllCtx) returned, when, is a non-nil map holding live's sessions with their
// data and none of gone's, whose values say why they are not live. Other
// sessions are allowed: the store may share a backend.
func (c *checker) checkAll(name, when string, all map[string][]byte, err error, live map[string][]byte, gone map[string]string) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s() %s = %v; want a nil error", name, when, err)
	}
	if all == nil {
		c.t.Fatalf("%s() %s = a nil map; want a non-nil map, empty when no session is live", name, when)
	}
	for tok, want := range live {
		got, ok := all[tok]
		if !ok {
			c.t.Errorf("%s() %s lacks live session %s", name, when, showToken(tok))
		} else if !bytes.Equal(got, want) {
			c.t.Errorf("%s() %s maps %s to %s; want %s", name, when, showToken(tok), show(got), show(want))
		}
	}
	for tok, why := range gone {
		if got, ok := all[tok]; ok {
			c.t.Errorf("%s() %s holds %s, %s, with data %s; want only live sessions", name, when, showToken(tok), why, show(got))
		}
	}
	if c.t.Failed() {
		c.t.FailNow()
	}
}

func unknownTokenNotFound(c *checker) {
	unknown := c.token()
	c.mustMiss("Find", c.s.Find, unknown, "a token never committed, in an empty store")
	c.commit(c.token(), data("another session"), time.Now().Add(longLife))
	c.mustMiss("Find", c.s.Find, unknown, "a token never committed, beside another session")
}

func malformedTokenNotFound(c *checker) {
	held, want := c.token(), data("held")
	c.commit(held, want, time.Now().Add(longLife))

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
		c.mustMiss("Find", c.s.Find, m.tok, m.what+", beside a live session")
	}
	c.mustFind("Find", c.s.Find, held, want, "a live session, after Finds of tokens made from its own")
}

func roundTrip(c *checker) {
	expiry := time.Now().Add(longLife)
	want := make(map[string][]byte)
	for i := range 20 {
		tok := c.token()
		want[tok] = data(fmt.Sprintf("session %d", i))
		c.commit(tok, want[tok], expiry)
	}
	bin := c.token()
	want[bin] = binaryData()
	c.commit(bin, want[bin], expiry)
	for tok, b := range want {
		c.mustFind("Find", c.s.Find, tok, b, "a live session, one of 21")
	}
}

func overwriteReplacesDataAndExpiry(c *checker) {
	// Data: longer, shorter, then longer again than what the token held.
	tok := c.token()
	for i, b := range [][]byte{data("first"), []byte("second, short"), data("third, the longest of the three")} {
		c.commit(tok, b, time.Now().Add(longLife))
		c.mustFind("Find", c.s.Find, tok, b, "a session just committed for the "+[]string{"first", "second", "third"}[i]+" time")
	}

	// Expiry: one session brought forward to expire soon, one pushed back
	// from expiring soon.
	shortened, lengthened := c.token(), c.token()
	c.commit(shortened, data("shortened, v1"), time.Now().Add(longLife))
	expiry := time.Now().Add(shortLife)
	c.commit(lengthened, data("lengthened, v1"), expiry)
	c.commit(shortened, data("shortened, v2"), expiry)
	c.commit(lengthened, data("lengthened, v2"), time.Now().Add(longLife))

	c.awaitGone("Find", c.s.Find, shortened, expiry,
		fmt.Sprintf("a session committed to live %v, then again to live %v", longLife, shortLife))
	sleepUntil(expiry.Add(granularity + 100*time.Millisecond))
	c.mustFind("Find", c.s.Find, lengthened, data("lengthened, v2"),
		fmt.Sprintf("a session committed to live %v, then again to live %v, now past the first expiry", shortLife, longLife))
}

func deleteRemovesSession(c *checker) {
	gone, kept := c.token(), c.token()
	keptData := data("kept")
	c.commit(gone, data("deleted"), time.Now().Add(longLife))
	c.commit(kept, keptData, time.Now().Add(longLife))
	if err := c.s.Delete(gone); err != nil {
		c.t.Fatalf("Delete(%s) of a live session = %v; want nil", showToken(gone), err)
	}
	c.mustMiss("Find", c.s.Find, gone, "a deleted session")
	c.mustFind("Find", c.s.Find, kept, keptData, "a live session, after another was deleted")
}

func deleteUnknownTokenIsNilNoOp(c *checker) {
	if err := c.s.Delete(c.token()); err != nil {
		c.t.Fatalf("Delete of a token never committed, in an empty store, = %v; want nil", err)
	}
	held, want := c.token(), data("held")
	c.commit(held, want, time.Now().Add(longLife))
	unknown := c.token()
	if err := c.s.Delete(unknown); err != nil {
		c.t.Fatalf("Delete of a token never committed, beside a live session, = %v; want nil", err)
	}
	c.mustMiss("Find", c.s.Find, unknown, "a token deleted without being committed")
	c.mustFind("Find", c.s.Find, held, want, "a live session, after Delete of a token never committed")

	deleted := c.token()
	c.commit(deleted, data("deleted twice"), time.Now().Add(longLife))
	for i := range 2 {
		if err := c.s.Delete(deleted); err != nil {
			c.t.Fatalf("Delete #%d of a committed token = %v; want nil", i+1, err)
		}
	}
	c.mustFind("Find", c.s.Find, held, want, "a live session, after another was deleted twice")
}

func notFoundAfterExpiry(c *checker) {
	tok, want := c.token(), data("expiring")
	start := time.Now()
	expiry := start.Add(shortLife)
	c.commit(tok, want, expiry)
	got, found, err := c.s.Find(tok)
	if took := time.Since(start); took < shortLife-granularity {
		if err != nil || !found || !bytes.Equal(got, want) {
			c.t.Fatalf("Find(%s) %v before the session's expiry = %s, %v, %v; want %s, true, nil",
				showToken(tok), (shortLife - took).Round(time.Millisecond), show(got), found, err, show(want))
		}
	} else {
		c.t.Logf("the check that a session is found before its expiry was left out: Commit and Find took %v", took)
	}
	what := fmt.Sprintf("a session committed to live %v", shortLife)
	c.awaitGone("Find", c.s.Find, tok, expiry, what)
	c.mustMiss("Find", c.s.Find, tok, what+", once not found")
	if err := c.s.Delete(tok); err != nil {
		c.t.Fatalf("Delete(%s) of an expired session = %v; want nil", showToken(tok), err)
	}
}

func pastExpiryNeverFound(c *checker) {
	all, hasAll := c.s.(iterableStore)
	gone := make(map[string]string)
	for _, ago := range []time.Duration{time.Second, time.Minute, 24 * time.Hour} {
		fresh := c.token()
		c.commit(fresh, data("fresh"), time.Now().Add(-ago))
		what := fmt.Sprintf("a new token committed with an expiry %v ago", ago)
		c.mustMiss("Find", c.s.Find, fresh, what)
		gone[fresh] = what

		held := c.token()
		c.commit(held, data("held"), time.Now().Add(longLife))
		c.commit(held, data("held, expired"), time.Now().Add(-ago))
		what = fmt.Sprintf("a live session committed again with an expiry %v ago", ago)
		c.mustMiss("Find", c.s.Find, held, what)
		gone[held] = what
	}
	if hasAll {
		m, err := all.All()
		c.checkAll("All", "after Commits with past expiries", m, err, nil, gone)
	}
}

func allReturnsLiveSessions(c *checker) {
	st, ok := c.s.(iterableStore)
	if !ok {
		c.t.Skip("the store has no All method (scs's IterableStore)")
	}
	checkAllMethod(c, "All", st.All, c.s.Commit, c.s.Delete, "Find", c.s.Find)
}

// checkAllMethod checks all, the method called name (All or AllCtx), on
// sessions committed and deleted with commit and del, waiting with find, the
// method called findName, for one of them to expire.
func checkAllMethod(c *checker, name string, all func() (map[string][]byte, error),
	commit func(string, []byte, time.Time) error, del func(string) error, findName string, find finder) {
	c.t.Helper()
	m, err := all()
	c.checkAll(name, "on a fresh store", m, err, nil, nil)

	live := map[string][]byte{c.token(): data("live 1"), c.token(): data("live 2")}
	for tok, b := range live {
		if err := commit(tok, b, time.Now().Add(longLife)); err != nil {
			c.t.Fatalf("committing %s: %v", showToken(tok), err)
		}
	}
	gone := make(map[string]string)
	expiring, past, deleted := c.token(), c.token(), c.token()
	expiry := time.Now().Add(shortLife)
	for _, s := range []struct {
		tok    string
		expiry time.Time
	}{{expiring, expiry}, {past, time.Now().Add(-time.Minute)}, {deleted, time.Now().Add(longLife)}} {
		if err := commit(s.tok, data("not live"), s.expiry); err != nil {
			c.t.Fatalf("committing %s: %v", showToken(s.tok), err)
		}
	}
	if err := del(deleted); err != nil {
		c.t.Fatalf("deleting %s: %v", showToken(deleted), err)
	}
	gone[past] = "committed with an expiry a minute ago"
	gone[deleted] = "deleted"
	m, err = all()
	c.checkAll(name, "holding live, deleted and past-expiry sessions", m, err, live, gone)

	what := fmt.Sprintf("a session committed to live %v", shortLife)
	c.awaitGone(findName, find, expiring, expiry, what)
	c.mustMiss("Find", c.s.Find, expiring, what+", once not found")
	gone[expiring] = "expired"
	m, err = all()
	c.checkAll(name, "after a session expired", m, err, live, gone)

	for tok := range live {
		if err := del(tok); err != nil {
			c.t.Fatalf("deleting %s: %v", showToken(tok), err)
		}
		gone[tok] = "deleted"
	}
	m, err = all()
	c.checkAll(name, "after every session was deleted or expired", m, err, nil, gone)
}

func ctxMethodsBehaveLikePlainOnes(c *checker) {
	cs, hasCtx := c.s.(ctxStore)
	as, hasAllCtx := c.s.(iterableCtxStore)
	if !hasCtx && !hasAllCtx {
		c.t.Skip("the store has none of FindCtx, CommitCtx, DeleteCtx (scs's CtxStore) and AllCtx (scs's IterableCtxStore)")
	}
	ctx := c.t.Context() // live until the subtest ends
	if hasCtx {
		// With AllCtx, its check below waits for a session committed by
		// CommitCtx to expire: waiting here too would only take longer.
		checkCtxMethods(c, ctx, cs, !hasAllCtx)
	} else {
		c.t.Log("the store has AllCtx but not all of FindCtx, CommitCtx and DeleteCtx: only AllCtx was checked")
	}
	if hasAllCtx {
		commit, del, findName, find := c.s.Commit, c.s.Delete, "Find", finder(c.s.Find)
		if hasCtx {
			findName = "FindCtx"
			commit = func(tok string, b []byte, expiry time.Time) error { return cs.CommitCtx(ctx, tok, b, expiry) }
			del = func(tok string) error { return cs.DeleteCtx(ctx, tok) }
			find = func(tok string) ([]byte, bool, error) { return cs.FindCtx(ctx, tok) }
		}
		allCtx := func() (map[string][]byte, error) { return as.AllCtx(ctx) }
		checkAllMethod(c, "AllCtx", allCtx, commit, del, findName, find)
		if st, ok := c.s.(iterableStore); ok {
			compareAll(c, ctx, st, as)
		}
	}
}

// checkCtxMethods checks FindCtx, CommitCtx and DeleteCtx against Find, Commit
// and Delete, each reading what the other wrote, and, if waitForExpiry, that a
// session committed by CommitCtx expires.
func checkCtxMethods(c *checker, ctx context.Context, cs ctxStore, waitForExpiry bool) {
	findCtx := func(tok string) ([]byte, bool, error) { return cs.FindCtx(ctx, tok) }
	commitCtx := func(tok string, b []byte, expiry time.Time) {
		c.t.Helper()
		if err := cs.CommitCtx(ctx, tok, b, expiry); err != nil {
			c.t.Fatalf("CommitCtx(%s, %s, %v) = %v; want nil", showToken(tok), show(b), expiry, err)
		}
	}
	deleteCtx := func(tok, what string) {
		c.t.Helper()
		if err := cs.DeleteCtx(ctx, tok); err != nil {
			c.t.Fatalf("DeleteCtx(%s) of %s = %v; want nil", showToken(tok), what, err)
		}
	}

	unknown := c.token()
	c.mustMiss("FindCtx", findCtx, unknown, "a token never committed")

	viaCtx, viaPlain := c.token(), c.token()
	commitCtx(viaCtx, data("via CommitCtx"), time.Now().Add(longLife))
	c.mustFind("FindCtx", findCtx, viaCtx, data("via CommitCtx"), "a session committed by CommitCtx")
	c.mustFind("Find", c.s.Find, viaCtx, data("via CommitCtx"), "a session committed by CommitCtx")
	c.commit(viaPlain, data("via Commit"), time.Now().Add(longLife))
	c.mustFind("FindCtx", findCtx, viaPlain, data("via Commit"), "a session committed by Commit")

	overwritten := []byte("overwritten by CommitCtx")
	commitCtx(viaPlain, overwritten, time.Now().Add(longLife))
	c.mustFind("FindCtx", findCtx, viaPlain, overwritten, "a session committed by Commit, then by CommitCtx")
	c.mustFind("Find", c.s.Find, viaPlain, overwritten, "a session committed by Commit, then by CommitCtx")

	past, held := c.token(), c.token()
	commitCtx(past, data("past"), time.Now().Add(-time.Minute))
	c.mustMiss("FindCtx", findCtx, past, "a token committed by CommitCtx with an expiry a minute ago")
	c.mustMiss("Find", c.s.Find, past, "a token committed by CommitCtx with an expiry a minute ago")
	c.commit(held, data("held"), time.Now().Add(longLife))
	commitCtx(held, data("held, expired"), time.Now().Add(-time.Minute))
	c.mustMiss("Find", c.s.Find, held, "a live session committed again by CommitCtx with an expiry a minute ago")

	deleteCtx(unknown, "a token never committed")
	deleteCtx(viaPlain, "a live session")
	c.mustMiss("Find", c.s.Find, viaPlain, "a session deleted by DeleteCtx")
	c.mustMiss("FindCtx", findCtx, viaPlain, "a session deleted by DeleteCtx")
	_ = c.s.Delete(viaCtx) // the delete rules check Delete's error
	c.mustMiss("FindCtx", findCtx, viaCtx, "a session deleted by Delete")

	if !waitForExpiry {
		return
	}
	expiring, kept := c.token(), c.token()
	c.commit(kept, data("kept"), time.Now().Add(longLife))
	expiry := time.Now().Add(shortLife)
	commitCtx(expiring, data("expiring"), expiry)
	what := fmt.Sprintf("a session committed by CommitCtx to live %v", shortLife)
	c.awaitGone("FindCtx", findCtx, expiring, expiry, what)
	c.mustMiss("Find", c.s.Find, expiring, what+", once not found by FindCtx")
	c.mustFind("FindCtx", findCtx, kept, data("kept"), "a live session, after another expired")
}

// compareAll fails the subtest unless All and AllCtx agree on a few sessions.
func compareAll(c *checker, ctx context.Context, st iterableStore, as iterableCtxStore) {
	toks := []string{c.token(), c.token(), c.token()}
	for i, tok := range toks {
		c.commit(tok, data(tok), time.Now().Add(longLife))
		if i == 2 {
			if err := c.s.Delete(tok); err != nil {
				c.t.Fatalf("Delete(%s) = %v; want nil", showToken(tok), err)
			}
		}
	}
	plain, err := st.All()
	if err != nil {
		c.t.Fatalf("All() = %v; want a nil error", err)
	}
	withCtx, err := as.AllCtx(ctx)
	if err != nil {
		c.t.Fatalf("AllCtx() = %v; want a nil error", err)
	}
	for _, tok := range toks {
		p, inPlain := plain[tok]
		w, inCtx := withCtx[tok]
		if inPlain != inCtx || !bytes.Equal(p, w) {
			c.t.Errorf("for %s, All() holds %s (%v) and AllCtx() %s (%v); want the same", showToken(tok), show(p), inPlain, show(w), inCtx)
		}
	}
}

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
				if err := c.s.Commit(tok, want, time.Now().Add(longLife)); err != nil {
					c.t.Errorf("client %d: Commit #%d = %v; want nil", i, w, err)
					return
				}
				got, found, err := c.s.Find(tok)
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
		c.mustFind("Find", c.s.Find, tok, last[i], fmt.Sprintf("client %d's session, after all %d clients finished", i, clients))
	}
}
