// SPDX-License-Identifier: MIT

// Package storetest checks that a session store for the scs session manager
// (github.com/alexedwards/scs/v2) keeps scs's store contract, and measures it
// with workloads that any other store can be measured with too.
//
// It imports nothing outside the standard library, and its Store interface has
// exactly the method set of scs's Store: any scs store satisfies it without
// importing this package or scs.
//
// # Testing a store
//
// A store author writes one function that makes a store, and adds one test
// and one benchmark to the store's package:
//
//	func newStore(tb testing.TB) storetest.Store { return mystore.New() }
//
//	func TestStore(t *testing.T) { storetest.Run(t, newStore) }
//
//	func BenchmarkStore(b *testing.B) { storetest.Bench(b, newStore) }
//
// Run and Bench call that function, a MakeStore, once per subtest or
// sub-benchmark, with that subtest's t or b, so every rule starts from a fresh
// store. A store that needs closing or a connection that needs releasing
// registers that with tb.Cleanup inside the function: it then runs when that
// subtest ends. The kit deletes every session it created before then, so a
// store over a shared backend (one Redis server for every run) is left as it
// was found.
//
// A store kept in the process's memory can use RunSynctest instead of Run:
// each rule then runs in a testing/synctest bubble, on a fake clock, and
// takes no time waiting for sessions to expire.
//
// # The rules
//
// Run runs one subtest per rule of scs's store contract, named after the rule,
// so a failure names the rule the store breaks:
//
//   - unknown-token-not-found: Find of a token never committed gives
//     found == false and a nil error.
//   - malformed-token-not-found: so does Find of a tampered or malformed token
//     (empty, truncated, extended, one character changed, glob and SQL
//     wildcards, quotes, 4 KiB long), and the session it was made from is
//     left intact.
//   - round-trip: Find gives back exactly the bytes committed, binary bytes
//     included, for each of many tokens.
//   - overwrite-replaces-data-and-expiry: a second Commit of a token replaces
//     its data (longer or shorter) and its expiry (earlier or later).
//   - delete-removes-session: after Delete the token is not found, and no other
//     session is touched.
//   - delete-unknown-token-is-nil-no-op: Delete of a token that is not held
//     returns nil and changes nothing.
//   - not-found-after-expiry: a session is found before its expiry and not
//     after it.
//   - past-expiry-never-found: a Commit with an expiry in the past returns nil,
//     and the session is not found, nor listed by All, whether the token was
//     new or held a live session.
//   - all-returns-non-nil-map-of-live-sessions: All gives a non-nil map, even
//     for an empty store, with every live session's data and no expired,
//     deleted or past-expiry one. Skipped when the store has no All method.
//   - ctx-methods-behave-like-plain-ones: FindCtx, CommitCtx, DeleteCtx and
//     AllCtx, given a live context, do what Find, Commit, Delete and All do,
//     on the same sessions. Skipped when the store has none of them.
//   - concurrent-clients-read-own-writes: clients committing and finding on
//     distinct tokens at the same time each read back their own last write.
//
// # Hardening
//
// RunHardening checks rules that scs does not ask of a store, so that Run
// leaves them out: a store that fails them is still a correct scs store.
//
//   - deleted-session-stays-deleted: after Delete of a live session, or a
//     Commit of it with a past expiry, a Commit of its token (with a live
//     expiry) returns an error and stores nothing, and other tokens still
//     commit. With scs's IdleTimeout set, every request commits its session:
//     without this rule a request that loaded the session before a logout
//     brings it back under the old token when it ends, and the error is
//     what makes scs's LoadAndSave call its ErrorFunc instead.
//
// Tokens are 43 characters of base64 from crypto/rand, shaped like scs's own
// and new in every run, so runs sharing a backend never collide. The kit never
// modifies a slice after passing it to Commit, nor one that Find or All
// returned.
//
// # Timing
//
// The expiry rules commit sessions that live two seconds and allow a store to
// expire them up to one second early or late, so a backend whose expiry has
// one-second granularity passes; beyond that, a store has five more seconds
// before Find must stop finding an expired session. No check depends on how
// quickly the test itself runs, so a loaded machine does not make them fail.
// Waiting for those expiries makes Run take about ten seconds; under
// RunSynctest the waits pass on the fake clock, in no real time.
//
// A call to the store that has not returned after a minute fails the rule
// that made it, with a message naming the call, instead of hanging the test
// binary until go test's -timeout (RunSynctest describes how a bubble
// changes that).
//
// # Benchmarks
//
// Bench runs the standard workloads as sub-benchmarks with fixed names, each
// reporting allocations, on stores holding 10,000 sessions whose data is a real
// scs session's gob encoding (157 bytes: a deadline and two values).
//
// The headline workloads hand the store what requests hand it: a token
// string of each request's own, parsed from its cookie, for sessions drawn
// at random, each finding its session elsewhere in memory. The kit copies
// the committed tokens into fresh strings before the timed loop. Handed back
// the very string it holds, a store built on a Go map compares keys by
// pointer and never reads their bytes, and sessions taken in commit order
// lie in memory in that order too: the -inorder workloads measure that,
// and flatter such a store.
//
//   - find-hit: Find of a live session, fresh tokens drawn at random.
//   - find-hit-inorder: Find of a live session, the committed strings
//     taken in turn.
//   - find-miss: Find of a token the store does not hold.
//   - commit: Commit over a live session, as scs does at the end of every
//     request that changed a session, fresh tokens drawn at random.
//   - commit-inorder: the same, the committed strings taken in turn.
//   - churn: Commit, Find and Delete of one session, its whole life, each
//     session under a new token; the Find and Delete with a fresh copy of
//     the token, as later requests bring it.
//   - parallel-mixed-90-10: Find and Commit from GOMAXPROCS goroutines at
//     once, nine finds to a commit, fresh tokens drawn at random. Parallel
//     runs it, or Finds alone, on a store of any size; with go test's -cpu
//     it sweeps GOMAXPROCS.
//   - parallel-mixed-90-10-inorder: the same, the committed strings taken
//     in turn.
//   - all-10k: All over the 10,000 sessions; skipped when the store has no All
//     method.
//
// Results from kits older than these names do not line up with them:
// there, find-hit, commit and parallel-mixed-90-10 took the committed
// strings in turn (today's -inorder workloads), and find-hit-random,
// commit-random and parallel-mixed-90-10-random drew the committed strings
// at random, not fresh copies.
//
// Because the names are fixed, benchstat lines up any two stores run through
// Bench. Wrap each store in a sub-benchmark named store=NAME and compare them
// in one run with benchstat's -col /store, or run each into its own file, from
// benchmarks of the same name, and give benchstat both files, with -ignore pkg
// when they come from different packages.
package storetest
