// SPDX-License-Identifier: MIT

package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// hangLimit is how long the kit waits for one call to the store before it
// fails the rule that made it: generous, so that a remote store's call can
// run into a timeout of its own first. Under RunSynctest it is also how long,
// in real time, one rule may take. The kit's own tests shorten it.
var hangLimit = time.Minute

// Run checks the store that makeStore returns against every rule of scs's
// store contract, in one subtest per rule named after it (the package
// documentation lists them). Rules that need an optional method the store does
// not have (All, the Ctx methods) are skipped.
//
// Each subtest calls makeStore itself, with its own t, so each rule gets a
// fresh store; register closing it with t.Cleanup inside makeStore. Before
// that cleanup runs, the subtest deletes every session it committed. A fresh
// store need not be empty: the rules use random tokens of their own and never
// assume they are the store's only sessions.
//
// A call to the store that has not returned after a minute fails the rule
// that made it, naming the call, and Run goes on with the next rule; the
// call is left blocked.
//
// Run takes about ten seconds, most of it waiting for sessions to expire.
func Run(t *testing.T, makeStore MakeStore) {
	t.Helper()
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) { r.run(t, makeStore, new(atomic.Pointer[string])) })
	}
}

// RunSynctest is Run with each rule inside a synctest bubble (see
// testing/synctest): the store it checks lives on the bubble's fake clock,
// so that waiting for sessions to expire takes no real time and Run's ten
// seconds become a fraction of one.
//
// It suits a store that keeps its sessions in the process's memory and reads
// the time only through package time. makeStore runs inside the bubble, so
// any goroutine the store starts belongs to it; that goroutine must have
// exited by the time the rule's cleanups, which run inside the bubble too,
// are done (close the store in a t.Cleanup). A store that talks to another
// process (Redis, a database) needs Run: its server does not share the fake
// clock, and a bubble's clock stands still while a goroutine waits on the
// network.
//
// A call to the store that blocks durably (on a channel, a sync.Cond, a
// sleep) fails the rule after a minute of fake time, as under Run; the test
// binary then stops, since a bubble cannot end while the call stays blocked
// in it. A call that blocks otherwise (on a mutex, in a system call) holds
// the fake clock still: after a minute of real time in one rule, RunSynctest
// stops the test binary with a panic naming the rule and the last call it
// made to the store.
func RunSynctest(t *testing.T, makeStore MakeStore) {
	t.Helper()
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			var lastCall atomic.Pointer[string]
			watchdog := time.AfterFunc(hangLimit, func() {
				call := "none yet"
				if p := lastCall.Load(); p != nil {
					call = *p
				}
				panic(fmt.Sprintf("storetest: rule %s has not finished after %v of real time: the store hangs where the fake clock cannot move (the last call to it: %s)",
					r.name, hangLimit, call))
			})
			defer watchdog.Stop()
			skipped := false
			synctest.Test(t, func(t *testing.T) {
				t.Cleanup(func() { skipped = t.Skipped() }) // the last cleanup to run
				r.run(t, makeStore, &lastCall)
			})
			if skipped { // synctest.Test reports failures only
				t.SkipNow()
			}
		})
	}
}

// run checks rule r on a fresh store from makeStore, as t, recording each
// call made to the store in lastCall.
func (r rule) run(t *testing.T, makeStore MakeStore, lastCall *atomic.Pointer[string]) {
	s := makeStore(t)
	if s == nil {
		t.Fatal("makeStore returned a nil Store")
	}
	c := newChecker(t, s, lastCall)
	t.Cleanup(c.deleteTokens) // registered after makeStore's cleanups, so it runs before them
	r.check(c)
}
