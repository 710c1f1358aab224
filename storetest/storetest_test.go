// SPDX-License-Identifier: MIT

package storetest_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golangcollege/memstore/internal/testchild"
	"github.com/golangcollege/memstore/storetest"
)

// The rules Run checks, by subtest name.
var rules = []string{
	"unknown-token-not-found",
	"malformed-token-not-found",
	"round-trip",
	"overwrite-replaces-data-and-expiry",
	"delete-removes-session",
	"delete-unknown-token-is-nil-no-op",
	"not-found-after-expiry",
	"past-expiry-never-found",
	"all-returns-non-nil-map-of-live-sessions",
	"ctx-methods-behave-like-plain-ones",
	"concurrent-clients-read-own-writes",
}

// optionalRules are the rules Run skips for a store with Store's methods only.
var optionalRules = []string{
	"all-returns-non-nil-map-of-live-sessions",
	"ctx-methods-behave-like-plain-ones",
}

// refStore is a correct store: a map under a mutex, the expiry checked on
// every read. It keeps sessions committed with a past expiry, hidden, as scs's
// own memstore does, so that a method that forgets the check shows.
type refStore struct {
	mu    sync.RWMutex
	items map[string]refItem
}

type refItem struct {
	data   []byte
	expiry time.Time
}

func newRefStore() *refStore { return &refStore{items: make(map[string]refItem)} }

func (s *refStore) Find(token string) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, ok := s.items[token]
	if !ok || !time.Now().Before(it.expiry) {
		return nil, false, nil
	}
	return it.data, true, nil
}

func (s *refStore) Commit(token string, b []byte, expiry time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items[token] = refItem{bytes.Clone(b), expiry}
	return nil
}

func (s *refStore) Delete(token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, token)
	return nil
}

func (s *refStore) All() (map[string][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all := make(map[string][]byte)
	now := time.Now()
	for tok, it := range s.items {
		if now.Before(it.expiry) {
			all[tok] = it.data
		}
	}
	return all, nil
}

func (s *refStore) FindCtx(_ context.Context, token string) ([]byte, bool, error) {
	return s.Find(token)
}

func (s *refStore) CommitCtx(_ context.Context, token string, b []byte, expiry time.Time) error {
	return s.Commit(token, b, expiry)
}

func (s *refStore) DeleteCtx(_ context.Context, token string) error { return s.Delete(token) }

func (s *refStore) AllCtx(context.Context) (map[string][]byte, error) { return s.All() }

// lookup returns token's item, expired or not.
func (s *refStore) lookup(token string) (refItem, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, ok := s.items[token]
	return it, ok
}

// plainStore has Store's three methods and nothing else.
type plainStore struct{ s *refStore }

func (p plainStore) Find(token string) ([]byte, bool, error) { return p.s.Find(token) }
func (p plainStore) Commit(token string, b []byte, expiry time.Time) error {
	return p.s.Commit(token, b, expiry)
}
func (p plainStore) Delete(token string) error { return p.s.Delete(token) }

// Each broken store below is refStore with one method, or one case of one,
// done wrong.

// findErrsOnUnknown reports an unknown token as an error, not as not found.
type findErrsOnUnknown struct{ *refStore }

func (s findErrsOnUnknown) Find(token string) ([]byte, bool, error) {
	if _, ok := s.lookup(token); !ok {
		return nil, false, errors.New("no such session")
	}
	return s.refStore.Find(token)
}

// findsUnknownAsEmpty reports an unknown token as found with empty data, as a
// Redis client mapping nil to "" might.
type findsUnknownAsEmpty struct{ *refStore }

func (s findsUnknownAsEmpty) Find(token string) ([]byte, bool, error) {
	if _, ok := s.lookup(token); !ok {
		return []byte{}, true, nil
	}
	return s.refStore.Find(token)
}

// findErrsOnMalformed rejects a token not shaped like scs's with an error.
type findErrsOnMalformed struct{ *refStore }

func (s findErrsOnMalformed) Find(token string) ([]byte, bool, error) {
	if len(token) != 43 || strings.Trim(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return nil, false, errors.New("malformed session token")
	}
	return s.refStore.Find(token)
}

// findMatchesPrefix falls back to a session whose token shares the first 42
// characters: a tampered last character still finds it.
type findMatchesPrefix struct{ *refStore }

func (s findMatchesPrefix) Find(token string) ([]byte, bool, error) {
	if b, found, err := s.refStore.Find(token); found || err != nil || len(token) < 42 {
		return b, found, err
	}
	s.mu.RLock()
	var match string
	for tok := range s.items {
		if len(tok) >= 42 && tok[:42] == token[:42] {
			match = tok
		}
	}
	s.mu.RUnlock()
	if match == "" {
		return nil, false, nil
	}
	return s.refStore.Find(match)
}

// storesText stores data as text, replacing invalid UTF-8 as a text column
// would.
type storesText struct{ *refStore }

func (s storesText) Commit(token string, b []byte, expiry time.Time) error {
	return s.refStore.Commit(token, []byte(strings.ToValidUTF8(string(b), "\uFFFD")), expiry)
}

// keepsDataOnOverwrite updates only the expiry of a token it holds.
type keepsDataOnOverwrite struct{ *refStore }

func (s keepsDataOnOverwrite) Commit(token string, b []byte, expiry time.Time) error {
	if it, ok := s.lookup(token); ok {
		b = it.data
	}
	return s.refStore.Commit(token, b, expiry)
}

// keepsStaleTail copies shorter new data over the old, keeping the old length.
type keepsStaleTail struct{ *refStore }

func (s keepsStaleTail) Commit(token string, b []byte, expiry time.Time) error {
	if it, ok := s.lookup(token); ok && len(b) < len(it.data) {
		b = append(slices.Clone(b), it.data[len(b):]...)
	}
	return s.refStore.Commit(token, b, expiry)
}

// keepsExpiryOnOverwrite updates only the data of a token it holds.
type keepsExpiryOnOverwrite struct{ *refStore }

func (s keepsExpiryOnOverwrite) Commit(token string, b []byte, expiry time.Time) error {
	if it, ok := s.lookup(token); ok {
		expiry = it.expiry
	}
	return s.refStore.Commit(token, b, expiry)
}

// onlyExtendsExpiry never brings a held token's expiry forward.
type onlyExtendsExpiry struct{ *refStore }

func (s onlyExtendsExpiry) Commit(token string, b []byte, expiry time.Time) error {
	if it, ok := s.lookup(token); ok && it.expiry.After(expiry) {
		expiry = it.expiry
	}
	return s.refStore.Commit(token, b, expiry)
}

// onlyShortensExpiry never pushes a held token's expiry back.
type onlyShortensExpiry struct{ *refStore }

func (s onlyShortensExpiry) Commit(token string, b []byte, expiry time.Time) error {
	if it, ok := s.lookup(token); ok && it.expiry.Before(expiry) {
		expiry = it.expiry
	}
	return s.refStore.Commit(token, b, expiry)
}

// deleteDoesNothing returns nil and keeps the session.
type deleteDoesNothing struct{ *refStore }

func (deleteDoesNothing) Delete(string) error { return nil }

// deleteErrsOnUnknown reports deleting an unknown token as an error.
type deleteErrsOnUnknown struct{ *refStore }

func (s deleteErrsOnUnknown) Delete(token string) error {
	if _, ok := s.lookup(token); !ok {
		return errors.New("no such session")
	}
	return s.refStore.Delete(token)
}

// deleteUnknownClears empties the store when told to delete a token it does
// not hold.
type deleteUnknownClears struct{ *refStore }

func (s deleteUnknownClears) Delete(token string) error {
	if _, ok := s.lookup(token); !ok {
		s.mu.Lock()
		clear(s.items)
		s.mu.Unlock()
		return nil
	}
	return s.refStore.Delete(token)
}

// findIgnoresExpiry returns expired data.
type findIgnoresExpiry struct{ *refStore }

func (s findIgnoresExpiry) Find(token string) ([]byte, bool, error) {
	if it, ok := s.lookup(token); ok {
		return it.data, true, nil
	}
	return nil, false, nil
}

// findExpiresLate finds sessions for 30 seconds past their expiry, as a store
// that leaves expiry to a slow background sweep does.
type findExpiresLate struct{ *refStore }

func (s findExpiresLate) Find(token string) ([]byte, bool, error) {
	if it, ok := s.lookup(token); ok && time.Now().Before(it.expiry.Add(30*time.Second)) {
		return it.data, true, nil
	}
	return nil, false, nil
}

// pastExpiryMeansADay gives a session committed with an expiry not in the
// future a day's lifetime.
type pastExpiryMeansADay struct{ *refStore }

func (s pastExpiryMeansADay) Commit(token string, b []byte, expiry time.Time) error {
	if !expiry.After(time.Now()) {
		expiry = time.Now().Add(24 * time.Hour)
	}
	return s.refStore.Commit(token, b, expiry)
}

// allNilWhenEmpty returns a nil map when no session is live.
type allNilWhenEmpty struct{ *refStore }

func (s allNilWhenEmpty) All() (map[string][]byte, error) {
	all, err := s.refStore.All()
	if len(all) == 0 {
		return nil, err
	}
	return all, err
}

// allIgnoresExpiry lists expired sessions too.
type allIgnoresExpiry struct{ *refStore }

func (s allIgnoresExpiry) All() (map[string][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all := make(map[string][]byte)
	for tok, it := range s.items {
		all[tok] = it.data
	}
	return all, nil
}

// ctxElsewhere keeps the sessions of the Ctx methods apart from the plain ones,
// as a store whose Ctx methods use another key prefix would.
type ctxElsewhere struct {
	*refStore
	other *refStore
}

func (s ctxElsewhere) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	return s.other.FindCtx(ctx, token)
}

func (s ctxElsewhere) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	return s.other.CommitCtx(ctx, token, b, expiry)
}

func (s ctxElsewhere) DeleteCtx(ctx context.Context, token string) error {
	return s.other.DeleteCtx(ctx, token)
}

func (s ctxElsewhere) AllCtx(ctx context.Context) (map[string][]byte, error) {
	return s.other.AllCtx(ctx)
}

// findCtxErrsOnUnknown reports an unknown token as an error from FindCtx only.
type findCtxErrsOnUnknown struct{ *refStore }

func (s findCtxErrsOnUnknown) FindCtx(_ context.Context, token string) ([]byte, bool, error) {
	if _, ok := s.lookup(token); !ok {
		return nil, false, errors.New("no such session")
	}
	return s.refStore.Find(token)
}

// commitCtxIgnoresExpiry gives every session committed by CommitCtx an hour.
type commitCtxIgnoresExpiry struct{ *refStore }

func (s commitCtxIgnoresExpiry) CommitCtx(_ context.Context, token string, b []byte, _ time.Time) error {
	return s.refStore.Commit(token, b, time.Now().Add(time.Hour))
}

// deleteCtxDoesNothing returns nil and keeps the session.
type deleteCtxDoesNothing struct{ *refStore }

func (deleteCtxDoesNothing) DeleteCtx(context.Context, string) error { return nil }

// allCtxIgnoresExpiry lists expired sessions too, from AllCtx only.
type allCtxIgnoresExpiry struct{ *refStore }

func (s allCtxIgnoresExpiry) AllCtx(context.Context) (map[string][]byte, error) {
	return allIgnoresExpiry(s).All()
}

// losesConcurrentWrites commits by copying the whole map and swapping the copy
// in, so that of two commits at once one is lost. It is free of data races.
type losesConcurrentWrites struct{ *refStore }

func (s losesConcurrentWrites) Commit(token string, b []byte, expiry time.Time) error {
	s.mu.RLock()
	items := maps.Clone(s.items)
	s.mu.RUnlock()
	items[token] = refItem{bytes.Clone(b), expiry}
	time.Sleep(50 * time.Microsecond) // a network round trip, say
	s.mu.Lock()
	s.items = items
	s.mu.Unlock()
	return nil
}

// commitPastExpiryDeadlocks deletes a session committed with a past expiry
// by calling Delete with its lock already held: Commit never returns, and
// the store's lock is never released.
type commitPastExpiryDeadlocks struct{ *refStore }

func (s commitPastExpiryDeadlocks) Commit(token string, b []byte, expiry time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !expiry.After(time.Now()) {
		return s.Delete(token) // takes s.mu again
	}
	s.items[token] = refItem{bytes.Clone(b), expiry}
	return nil
}

// findUnknownWaitsForever waits, in Find of a token it does not hold, for a
// reply that never comes.
type findUnknownWaitsForever struct{ *refStore }

func (s findUnknownWaitsForever) Find(token string) ([]byte, bool, error) {
	if _, ok := s.lookup(token); !ok {
		<-make(chan struct{})
	}
	return s.refStore.Find(token)
}

// stores are the stores TestBrokenStoreHelper can run the kit on, by name.
var stores = map[string]func() storetest.Store{
	"reference":                    func() storetest.Store { return newRefStore() },
	"reference-plain":              func() storetest.Store { return plainStore{newRefStore()} },
	"find-errs-on-unknown":         func() storetest.Store { return findErrsOnUnknown{newRefStore()} },
	"finds-unknown-as-empty":       func() storetest.Store { return findsUnknownAsEmpty{newRefStore()} },
	"find-errs-on-malformed":       func() storetest.Store { return findErrsOnMalformed{newRefStore()} },
	"find-matches-prefix":          func() storetest.Store { return findMatchesPrefix{newRefStore()} },
	"stores-text":                  func() storetest.Store { return storesText{newRefStore()} },
	"keeps-data-on-overwrite":      func() storetest.Store { return keepsDataOnOverwrite{newRefStore()} },
	"keeps-stale-tail":             func() storetest.Store { return keepsStaleTail{newRefStore()} },
	"keeps-expiry-on-overwrite":    func() storetest.Store { return keepsExpiryOnOverwrite{newRefStore()} },
	"only-extends-expiry":          func() storetest.Store { return onlyExtendsExpiry{newRefStore()} },
	"only-shortens-expiry":         func() storetest.Store { return onlyShortensExpiry{newRefStore()} },
	"delete-does-nothing":          func() storetest.Store { return deleteDoesNothing{newRefStore()} },
	"delete-errs-on-unknown":       func() storetest.Store { return deleteErrsOnUnknown{newRefStore()} },
	"delete-unknown-clears":        func() storetest.Store { return deleteUnknownClears{newRefStore()} },
	"find-ignores-expiry":          func() storetest.Store { return findIgnoresExpiry{newRefStore()} },
	"find-expires-late":            func() storetest.Store { return findExpiresLate{newRefStore()} },
	"past-expiry-means-a-day":      func() storetest.Store { return pastExpiryMeansADay{newRefStore()} },
	"all-nil-when-empty":           func() storetest.Store { return allNilWhenEmpty{newRefStore()} },
	"all-ignores-expiry":           func() storetest.Store { return allIgnoresExpiry{newRefStore()} },
	"ctx-elsewhere":                func() storetest.Store { return ctxElsewhere{newRefStore(), newRefStore()} },
	"find-ctx-errs-on-unknown":     func() storetest.Store { return findCtxErrsOnUnknown{newRefStore()} },
	"commit-ctx-ignores-expiry":    func() storetest.Store { return commitCtxIgnoresExpiry{newRefStore()} },
	"delete-ctx-does-nothing":      func() storetest.Store { return deleteCtxDoesNothing{newRefStore()} },
	"all-ctx-ignores-expiry":       func() storetest.Store { return allCtxIgnoresExpiry{newRefStore()} },
	"loses-concurrent-writes":      func() storetest.Store { return losesConcurrentWrites{newRefStore()} },
	"commit-past-expiry-deadlocks": func() storetest.Store { return commitPastExpiryDeadlocks{newRefStore()} },
	"find-unknown-waits-forever":   func() storetest.Store { return findUnknownWaitsForever{newRefStore()} },
}

// breakages says which rule each broken store must fail.
var breakages = []struct{ store, rule string }{
	{"find-errs-on-unknown", "unknown-token-not-found"},
	{"finds-unknown-as-empty", "unknown-token-not-found"},
	{"find-errs-on-malformed", "malformed-token-not-found"},
	{"find-matches-prefix", "malformed-token-not-found"},
	{"stores-text", "round-trip"},
	{"keeps-data-on-overwrite", "overwrite-replaces-data-and-expiry"},
	{"keeps-stale-tail", "overwrite-replaces-data-and-expiry"},
	{"keeps-expiry-on-overwrite", "overwrite-replaces-data-and-expiry"},
	{"only-extends-expiry", "overwrite-replaces-data-and-expiry"},
	{"only-shortens-expiry", "overwrite-replaces-data-and-expiry"},
	{"delete-does-nothing", "delete-removes-session"},
	{"delete-errs-on-unknown", "delete-unknown-token-is-nil-no-op"},
	{"delete-unknown-clears", "delete-unknown-token-is-nil-no-op"},
	{"find-ignores-expiry", "not-found-after-expiry"},
	{"find-expires-late", "not-found-after-expiry"},
	{"past-expiry-means-a-day", "past-expiry-never-found"},
	{"all-nil-when-empty", "all-returns-non-nil-map-of-live-sessions"},
	{"all-ignores-expiry", "all-returns-non-nil-map-of-live-sessions"},
	{"ctx-elsewhere", "ctx-methods-behave-like-plain-ones"},
	{"find-ctx-errs-on-unknown", "ctx-methods-behave-like-plain-ones"},
	{"commit-ctx-ignores-expiry", "ctx-methods-behave-like-plain-ones"},
	{"delete-ctx-does-nothing", "ctx-methods-behave-like-plain-ones"},
	{"all-ctx-ignores-expiry", "ctx-methods-behave-like-plain-ones"},
	{"loses-concurrent-writes", "concurrent-clients-read-own-writes"},
}

// hangs says how the kit fails a store that hangs. Each case runs, in a
// child process, the rules that rules selects, on its clock, with the hang
// limit shortened to limit where one is given (a minute otherwise); the
// child must exit with a non-zero status, having failed the rules of failed
// and passed those of passed, and its output must hold each of want.
var hangs = []struct {
	name, store, clock, limit, rules string
	failed, passed, want             []string
}{
	{
		// Run fails the rule that hung, after the limit, and goes on.
		name: "real-clock", store: "commit-past-expiry-deadlocks", clock: realClock, limit: "2s",
		rules:  "^(past-expiry-never-found|concurrent-clients-read-own-writes)$",
		failed: []string{"past-expiry-never-found"}, passed: []string{"concurrent-clients-read-own-writes"},
		want: []string{"has not returned after 2s: the store hangs", "Commit("},
	},
	{
		// In a bubble, a call blocked on a channel lets the fake clock run
		// to the limit at once; the bubble then cannot end.
		name: "fake-clock-durable-block", store: "find-unknown-waits-forever", clock: fakeClock,
		rules:  "^unknown-token-not-found$",
		failed: []string{"unknown-token-not-found"},
		want:   []string{"Find(", "has not returned after 1m0s: the store hangs", "deadlock: main bubble goroutine has exited but blocked goroutines remain"},
	},
	{
		// In a bubble, a call blocked on a mutex holds the fake clock still:
		// the real-time watchdog stops the binary.
		name: "fake-clock-mutex", store: "commit-past-expiry-deadlocks", clock: fakeClock, limit: "2s",
		rules: "^past-expiry-never-found$",
		want:  []string{"storetest: rule past-expiry-never-found has not finished after 2s of real time", "the last call to it: Commit("},
	},
}

// The children's clocks, as $STORETEST_CLOCK gives them: the kit's Run, or
// RunSynctest; or RunHardening, on the real clock.
const (
	realClock      = "real"
	fakeClock      = "fake"
	hardeningClock = "hardening"
)

// The environment of a child process: the store, the clock and the hang
// limit it runs the kit with.
const (
	brokenEnv    = "STORETEST_BROKEN_STORE"
	clockEnv     = "STORETEST_CLOCK"
	hangLimitEnv = "STORETEST_HANG_LIMIT"
)

// TestBrokenStoreHelper runs the kit on the store named by
// $STORETEST_BROKEN_STORE: RunSynctest, or Run when $STORETEST_CLOCK is
// "real", with the hang limit $STORETEST_HANG_LIMIT if set. It runs only in
// the child processes of TestKitFailsBrokenStores and
// TestKitFailsHangingStores.
func TestBrokenStoreHelper(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as a child process of TestKitFailsBrokenStores and TestKitFailsHangingStores")
	}
	newStore, ok := stores[name]
	if !ok {
		t.Fatalf("no store named %q", name)
	}
	if limit := os.Getenv(hangLimitEnv); limit != "" {
		d, err := time.ParseDuration(limit)
		if err != nil {
			t.Fatalf("$%s: %v", hangLimitEnv, err)
		}
		defer storetest.SetHangLimit(d)()
	}
	makeStore := func(testing.TB) storetest.Store { return newStore() }
	switch clock := os.Getenv(clockEnv); clock {
	case realClock:
		storetest.Run(t, makeStore)
	case hardeningClock:
		storetest.RunHardening(t, makeStore)
	case fakeClock, "":
		storetest.RunSynctest(t, makeStore)
	default:
		t.Fatalf("$%s = %q; want %q or %q", clockEnv, clock, realClock, fakeClock)
	}
}

// child is one run of TestBrokenStoreHelper in a child process: the store,
// the clock, the hang limit ("" for the kit's own) and the pattern selecting
// rules ("" for all of them).
type child struct{ store, clock, limit, rules string }

// childResult is what one child process running TestBrokenStoreHelper did.
type childResult struct {
	err                   error // from exec: nil when the child exited 0
	output                string
	passed, failed, skipd []string // rules, by their subtest's result
}

// run runs the child process.
func (ch child) run() childResult {
	run := "^TestBrokenStoreHelper$"
	if ch.rules != "" {
		run += "/" + ch.rules
	}
	c := testchild.Run(run, brokenEnv+"="+ch.store, clockEnv+"="+ch.clock, hangLimitEnv+"="+ch.limit)
	return childResult{
		err:    c.Err,
		output: c.Output,
		passed: c.Subtests("TestBrokenStoreHelper", "PASS"),
		failed: c.Subtests("TestBrokenStoreHelper", "FAIL"),
		skipd:  c.Subtests("TestBrokenStoreHelper", "SKIP"),
	}
}

// runChildren runs the children a few at a time and returns their results,
// in the same order.
func runChildren(children []child) []childResult {
	var (
		results = make([]childResult, len(children))
		wg      sync.WaitGroup
		slots   = make(chan struct{}, 2*runtime.GOMAXPROCS(0)) // each child keeps a core busy
	)
	for i, ch := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			results[i] = ch.run()
			<-slots
		}()
	}
	wg.Wait()
	return results
}

// exitedNonZero reports whether err, from exec, says that the child ran and
// exited with a non-zero status.
func exitedNonZero(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() != 0
}

// TestKitFailsBrokenStores runs RunSynctest, in child processes, over stores
// each broken in one way, and checks that each fails the rule it breaks; and
// over the correct reference store, which must pass every rule, and its plain
// version, which must pass every rule but the optional ones, skipped.
func TestKitFailsBrokenStores(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	t.Parallel() // beside TestKitFailsHangingStores, whose children mostly wait out hang limits
	names := []string{"reference", "reference-plain"}
	for _, b := range breakages {
		names = append(names, b.store)
	}
	children := make([]child, len(names))
	for i, name := range names {
		children[i] = child{store: name, clock: fakeClock}
	}
	ran := runChildren(children)
	results := make(map[string]childResult)
	for i, name := range names {
		results[name] = ran[i]
	}

	t.Run("reference", func(t *testing.T) {
		r := results["reference"]
		if r.err != nil || len(r.failed) > 0 || !sameSet(r.passed, rules) {
			t.Fatalf("RunSynctest on the reference store: exit %v, failed %q, passed %q; want success, every rule passed\n%s",
				r.err, r.failed, r.passed, r.output)
		}
	})
	t.Run("reference-plain", func(t *testing.T) {
		r := results["reference-plain"]
		mandatory := slices.DeleteFunc(slices.Clone(rules), func(rule string) bool { return slices.Contains(optionalRules, rule) })
		if r.err != nil || len(r.failed) > 0 || !sameSet(r.passed, mandatory) || !sameSet(r.skipd, optionalRules) {
			t.Fatalf("RunSynctest on the plain reference store: exit %v, failed %q, passed %q, skipped %q; want success, %q skipped, the rest passed\n%s",
				r.err, r.failed, r.passed, r.skipd, optionalRules, r.output)
		}
	})
	for _, b := range breakages {
		t.Run(b.store, func(t *testing.T) {
			r := results[b.store]
			if !exitedNonZero(r.err) {
				t.Errorf("RunSynctest on store %s: exit %v; want a non-zero exit status", b.store, r.err)
			}
			if !slices.Contains(r.failed, b.rule) {
				t.Errorf("RunSynctest on store %s failed rules %q; want %s among them", b.store, r.failed, b.rule)
			}
			if t.Failed() {
				t.Logf("child output:\n%s", r.output)
			} else {
				t.Logf("failed rules: %q", r.failed)
			}
		})
	}
}

// TestRunHardeningFailsTheReferenceStore runs RunHardening, in a child
// process, over the reference store, which passes every rule of Run (see
// TestKitFailsBrokenStores) but, like every scs store, commits whatever it
// is given: it fails each hardening rule.
func TestRunHardeningFailsTheReferenceStore(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	t.Parallel()
	r := child{store: "reference", clock: hardeningClock}.run()
	want := []string{"deleted-session-stays-deleted"}
	if !exitedNonZero(r.err) || !sameSet(r.failed, want) || len(r.passed) > 0 {
		t.Fatalf("RunHardening on the reference store: exit %v, failed %q, passed %q; want a non-zero exit, %q failed\n%s",
			r.err, r.failed, r.passed, want, r.output)
	}
}

// TestKitFailsHangingStores runs the kit, in child processes, over stores
// whose calls never return, and checks that the rule that hung fails, by
// name, instead of the test binary hanging (see hangs).
func TestKitFailsHangingStores(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	t.Parallel()
	children := make([]child, len(hangs))
	for i, h := range hangs {
		children[i] = child{store: h.store, clock: h.clock, limit: h.limit, rules: h.rules}
	}
	ran := runChildren(children)
	for i, h := range hangs {
		t.Run(h.name, func(t *testing.T) {
			r := ran[i]
			if !exitedNonZero(r.err) {
				t.Errorf("the kit on store %s: exit %v; want a non-zero exit status", h.store, r.err)
			}
			for _, rule := range h.failed {
				if !slices.Contains(r.failed, rule) {
					t.Errorf("the kit on store %s failed rules %q; want %s among them", h.store, r.failed, rule)
				}
			}
			for _, rule := range h.passed {
				if !slices.Contains(r.passed, rule) {
					t.Errorf("the kit on store %s passed rules %q; want %s among them: the rules after a hang still run", h.store, r.passed, rule)
				}
			}
			for _, want := range h.want {
				if !strings.Contains(r.output, want) {
					t.Errorf("the kit's output on store %s does not say %q", h.store, want)
				}
			}
			if t.Failed() {
				t.Logf("child output:\n%s", r.output)
			}
		})
	}
}

// TestEveryRuleHasABrokenStore checks that the breakages cover every rule and
// that every store named in them, or in hangs, exists.
func TestEveryRuleHasABrokenStore(t *testing.T) {
	covered := make(map[string]bool)
	named := map[string]bool{"reference": true, "reference-plain": true}
	for _, b := range breakages {
		if _, ok := stores[b.store]; !ok {
			t.Errorf("breakage names store %q, which does not exist", b.store)
		}
		if !slices.Contains(rules, b.rule) {
			t.Errorf("breakage %q names rule %q, which does not exist", b.store, b.rule)
		}
		covered[b.rule] = true
		named[b.store] = true
	}
	for _, h := range hangs {
		if _, ok := stores[h.store]; !ok {
			t.Errorf("hang %q names store %q, which does not exist", h.name, h.store)
		}
		named[h.store] = true
	}
	for _, rule := range rules {
		if !covered[rule] {
			t.Errorf("no broken store proves the kit can fail rule %s", rule)
		}
	}
	for name := range stores {
		if !named[name] {
			t.Errorf("store %s is in no breakage or hang", name)
		}
	}
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// BenchmarkReference runs Bench over the reference store and its plain
// version, as sub-benchmarks named for benchstat's -col /store.
func BenchmarkReference(b *testing.B) {
	b.Run("store=reference", func(b *testing.B) {
		storetest.Bench(b, func(testing.TB) storetest.Store { return newRefStore() })
	})
	b.Run("store=plain", func(b *testing.B) {
		storetest.Bench(b, func(testing.TB) storetest.Store { return plainStore{newRefStore()} })
	})
}
