// SPDX-License-Identifier: MIT

package storetest

import (
	"sync/atomic"
	"testing"
	"time"
)

// RunHardening checks the store that makeStore returns against rules beyond
// scs's store contract, in one subtest per rule named after it (the package
// documentation lists them). scs asks none of them of a store, and Run does
// not check them: a store that fails them is still a correct scs store. Each
// rule gets a fresh store, and the sessions it committed are deleted when it
// ends, as under Run.
func RunHardening(t *testing.T, makeStore MakeStore) {
	t.Helper()
	for _, r := range hardeningRules {
		t.Run(r.name, func(t *testing.T) { r.run(t, makeStore, new(atomic.Pointer[string])) })
	}
}

// hardeningRules are the rules RunHardening checks.
var hardeningRules = []rule{
	{"deleted-session-stays-deleted", deletedSessionStaysDeleted},
}

// deletedSessionStaysDeleted: once Delete has removed a session, or a Commit
// with a past expiry has, a Commit of its token before the session's expiry
// returns an error and stores nothing. With scs's IdleTimeout set, every
// request commits its session, so without this a request that loaded the
// session before a logout brings it back when it ends; the error makes scs's
// LoadAndSave call its ErrorFunc instead of setting the old cookie again.
func deletedSessionStaysDeleted(c *checker) {
	find, commit := c.plain.find, c.plain.commit
	live := time.Now().Add(longLife)

	deleted := c.token()
	c.commit(commit, deleted, data("logged in"), live)
	c.delete(c.plain.delete, deleted, "a live session")
	c.mustRefuse(commit, deleted, "a session removed by Delete")
	c.mustMiss(find, deleted, "a deleted session committed again")

	expired := c.token()
	c.commit(commit, expired, data("logged in"), live)
	c.commit(commit, expired, data("logging out"), time.Now().Add(-time.Hour))
	c.mustRefuse(commit, expired, "a session removed by a Commit with a past expiry")
	c.mustMiss(find, expired, "a session removed by a past expiry, committed again")

	fresh, want := c.token(), data("another user")
	c.commit(commit, fresh, want, live)
	c.mustFind(find, fresh, want, "a new session, committed after the refusals")
}

// mustRefuse fails the rule unless m's Commit of tok, with live data, returns
// an error. what describes the session tok held.
func (c *checker) mustRefuse(m committer, tok, what string) {
	c.t.Helper()
	var err error
	call := m.name + "(" + showToken(tok) + ", ...)"
	c.await(call, func() { err = m.call(tok, data("brought back"), time.Now().Add(longLife)) })
	if err == nil {
		c.t.Fatalf("%s of %s = nil; want an error: a request that loaded the session before it was deleted would bring it back", call, what)
	}
}
