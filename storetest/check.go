// SPDX-License-Identifier: MIT

package storetest

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checker is one rule's view of the store under test: the store, its methods
// under the names failures give them, and the assertions the rules make.
type checker struct {
	t     *testing.T
	s     Store
	plain methods // the store's own Find, Commit, Delete and, if it has it, All

	lastCall *atomic.Pointer[string] // the store call made last, for RunSynctest's watchdog

	mu     sync.Mutex
	tokens []string // every token handed out, deleted when the rule ends
}

// newChecker returns a checker of s for the rule t runs, recording each call
// it makes to s in lastCall.
func newChecker(t *testing.T, s Store, lastCall *atomic.Pointer[string]) *checker {
	c := &checker{t: t, s: s, lastCall: lastCall, plain: methods{
		find:   finder{"Find", s.Find},
		commit: committer{"Commit", s.Commit},
		delete: deleter{"Delete", s.Delete},
	}}
	if st, ok := s.(iterableStore); ok {
		c.plain.all = lister{"All", st.All}
	}
	return c
}

// methods is one set of a store's methods as a check calls them: the plain
// ones, the Ctx ones with a live context, or a mix.
type methods struct {
	find   finder
	commit committer
	delete deleter
	all    lister // zero when the store has no All
}

// finder is Find, or FindCtx with its context bound, under its name.
type finder struct {
	name string
	call func(token string) ([]byte, bool, error)
}

// committer is Commit, or CommitCtx with its context bound, under its name.
type committer struct {
	name string
	call func(token string, b []byte, expiry time.Time) error
}

// deleter is Delete, or DeleteCtx with its context bound, under its name.
type deleter struct {
	name string
	call func(token string) error
}

// lister is All, or AllCtx with its context bound, under its name.
type lister struct {
	name string
	call func() (map[string][]byte, error)
}

// guard runs call, the store call that what describes, on a goroutine of its
// own, and waits for it to return for hangLimit at most. If it has not
// returned by then, guard fails the rule with an error saying so and returns
// false, leaving call blocked where it is: a hung store cannot hang the test
// binary. A panic in call is raised again on the caller's goroutine.
func (c *checker) guard(what string, call func()) (returned bool) {
	c.t.Helper()
	c.lastCall.Store(&what)
	done := make(chan struct{})
	var panicked any
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				panicked = fmt.Sprintf("%s panicked: %v\n%s", what, r, debug.Stack())
			}
		}()
		call()
	}()
	timer := time.NewTimer(hangLimit)
	defer timer.Stop()
	select {
	case <-done:
		if panicked != nil {
			panic(panicked)
		}
		return true
	case <-timer.C:
		c.t.Errorf("%s has not returned after %v: the store hangs", what, hangLimit)
		return false
	}
}

// await is guard for the rule's own goroutine: it ends the rule if call hangs.
func (c *checker) await(what string, call func()) {
	c.t.Helper()
	if !c.guard(what, call) {
		c.t.FailNow()
	}
}

// token returns a new random token, to be deleted when the rule ends.
func (c *checker) token() string {
	tok := newToken()
	c.mu.Lock()
	c.tokens = append(c.tokens, tok)
	c.mu.Unlock()
	return tok
}

// deleteTokens deletes every token handed out, so that a shared backend is left
// as it was. Errors are ignored: rules report them. A Delete that hangs fails
// the rule and ends the tidying.
func (c *checker) deleteTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tok := range c.tokens {
		what := fmt.Sprintf("Delete(%s), deleting the rule's sessions as it ends", showToken(tok))
		if !c.guard(what, func() { _ = c.s.Delete(tok) }) { // rules report Delete's errors; this is only tidying up
			return
		}
	}
}

// find returns what f gives for tok.
func (c *checker) find(f finder, tok string) (b []byte, found bool, err error) {
	c.t.Helper()
	c.await(fmt.Sprintf("%s(%s)", f.name, showToken(tok)), func() { b, found, err = f.call(tok) })
	return b, found, err
}

// list returns what l gives.
func (c *checker) list(l lister) (all map[string][]byte, err error) {
	c.t.Helper()
	c.await(l.name+"()", func() { all, err = l.call() })
	return all, err
}

// commit commits b under tok until expiry with m and fails the rule on an
// error.
func (c *checker) commit(m committer, tok string, b []byte, expiry time.Time) {
	c.t.Helper()
	var err error
	what := fmt.Sprintf("%s(%s, %s, %v)", m.name, showToken(tok), show(b), expiry.Round(0))
	c.await(what, func() { err = m.call(tok, b, expiry) })
	if err != nil {
		c.t.Fatalf("%s = %v; want nil", what, err)
	}
}

// delete deletes tok with d and fails the rule on an error. what describes
// the token.
func (c *checker) delete(d deleter, tok, what string) {
	c.t.Helper()
	var err error
	c.await(fmt.Sprintf("%s(%s)", d.name, showToken(tok)), func() { err = d.call(tok) })
	if err != nil {
		c.t.Fatalf("%s(%s) of %s = %v; want nil", d.name, showToken(tok), what, err)
	}
}

// mustFind fails the rule unless f gives tok's data as want. what describes
// the session.
func (c *checker) mustFind(f finder, tok string, want []byte, what string) {
	c.t.Helper()
	got, found, err := c.find(f, tok)
	if err != nil || !found || !bytes.Equal(got, want) {
		c.t.Fatalf("%s(%s) of %s = %s, %v, %v; want %s, true, nil", f.name, showToken(tok), what, show(got), found, err, show(want))
	}
}

// mustMiss fails the rule unless f reports tok not found with a nil error.
// what describes the token.
func (c *checker) mustMiss(f finder, tok, what string) {
	c.t.Helper()
	got, found, err := c.find(f, tok)
	if err != nil || found {
		c.t.Fatalf("%s(%s) of %s = %s, %v, %v; want found == false and a nil error", f.name, showToken(tok), what, show(got), found, err)
	}
}

// awaitGone polls f until it stops finding tok, committed to expire at
// expiry, and fails the rule if it still finds it granularity+patience after
// expiry. what describes the session. A slow machine never makes it fail: it
// reads the clock before it calls f.
func (c *checker) awaitGone(f finder, tok string, expiry time.Time, what string) {
	c.t.Helper()
	deadline := expiry.Add(granularity + patience)
	for {
		late := time.Now().After(deadline)
		got, found, err := c.find(f, tok)
		if err != nil {
			c.t.Fatalf("%s(%s) of %s, while waiting for it to expire, = %s, %v, %v; want a nil error",
				f.name, showToken(tok), what, show(got), found, err)
		}
		if !found {
			return
		}
		if late {
			c.t.Fatalf("%s(%s) of %s still finds it %v after its expiry; want found == false (%v allowed)",
				f.name, showToken(tok), what, time.Since(expiry).Round(time.Millisecond), granularity+patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sleepUntil sleeps until the clock reaches when.
func sleepUntil(when time.Time) {
	time.Sleep(time.Until(when))
}

// checkAll fails the rule unless l, called when, gives a nil error and a
// non-nil map holding live's sessions with their data and none of gone's,
// whose values say why they are not live. Other sessions are allowed: the
// store may share a backend.
func (c *checker) checkAll(l lister, when string, live map[string][]byte, gone map[string]string) {
	c.t.Helper()
	all, err := c.list(l)
	if err != nil {
		c.t.Fatalf("%s() %s = %v; want a nil error", l.name, when, err)
	}
	if all == nil {
		c.t.Fatalf("%s() %s = a nil map; want a non-nil map, empty when no session is live", l.name, when)
	}
	for tok, want := range live {
		got, ok := all[tok]
		if !ok {
			c.t.Errorf("%s() %s lacks live session %s", l.name, when, showToken(tok))
		} else if !bytes.Equal(got, want) {
			c.t.Errorf("%s() %s maps %s to %s; want %s", l.name, when, showToken(tok), show(got), show(want))
		}
	}
	for tok, why := range gone {
		if got, ok := all[tok]; ok {
			c.t.Errorf("%s() %s holds %s, %s, with data %s; want only live sessions", l.name, when, showToken(tok), why, show(got))
		}
	}
	if c.t.Failed() {
		c.t.FailNow()
	}
}
