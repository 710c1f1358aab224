// SPDX-License-Identifier: MIT

package storetest_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
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

// stores are the stores TestBrokenStoreHelper can run Run on, by name.
var stores = map[string]func() storetest.Store{
	"reference":                 func() storetest.Store { return newRefStore() },
	"reference-plain":           func() storetest.Store { return plainStore{newRefStore()} },
	"find-errs-on-unknown":      func() storetest.Store { return findErrsOnUnknown{newRefStore()} },
	"finds-unknown-as-empty":    func() storetest.Store { return findsUnknownAsEmpty{newRefStore()} },
	"find-errs-on-malformed":    func() storetest.Store { return findErrsOnMalformed{newRefStore()} },
	"find-matches-prefix":       func() storetest.Store { return findMatchesPrefix{newRefStore()} },
	"stores-text":               func() storetest.Store { return storesText{newRefStore()} },
	"keeps-data-on-overwrite":   func() storetest.Store { return keepsDataOnOverwrite{newRefStore()} },
	"keeps-stale-tail":          func() storetest.Store { return keepsStaleTail{newRefStore()} },
	"keeps-expiry-on-overwrite": func() storetest.Store { return keepsExpiryOnOverwrite{newRefStore()} },
	"only-extends-expiry":       func() storetest.Store { return onlyExtendsExpiry{newRefStore()} },
	"only-shortens-expiry":      func() storetest.Store { return onlyShortensExpiry{newRefStore()} },
	"delete-does-nothing":       func() storetest.Store { return deleteDoesNothing{newRefStore()} },
	"delete-errs-on-unknown":    func() storetest.Store { return deleteErrsOnUnknown{newRefStore()} },
	"delete-unknown-clears":     func() storetest.Store { return deleteUnknownClears{newRefStore()} },
	"find-ignores-expiry":       func() storetest.Store { return findIgnoresExpiry{newRefStore()} },
	"find-expires-late":         func() storetest.Store { return findExpiresLate{newRefStore()} },
	"past-expiry-means-a-day":   func() storetest.Store { return pastExpiryMeansADay{newRefStore()} },
	"all-nil-when-empty":        func() storetest.Store { return allNilWhenEmpty{newRefStore()} },
	"all-ignores-expiry":        func() storetest.Store { return allIgnoresExpiry{newRefStore()} },
	"ctx-elsewhere":             func() storetest.Store { return ctxElsewhere{newRefStore(), newRefStore()} },
	"find-ctx-errs-on-unknown":  func() storetest.Store { return findCtxErrsOnUnknown{newRefStore()} },
	"commit-ctx-ignores-expiry": func() storetest.Store { return commitCtxIgnoresExpiry{newRefStore()} },
	"delete-ctx-does-nothing":   func() storetest.Store { return deleteCtxDoesNothing{newRefStore()} },
	"all-ctx-ignores-expiry":    func() storetest.Store { return allCtxIgnoresExpiry{newRefStore()} },
	"loses-concurrent-writes":   func() storetest.Store { return losesConcurrentWrites{newRefStore()} },
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

// brokenEnv names, in a child process, the store TestBrokenStoreHelper runs.
const brokenEnv = "STORETEST_BROKEN_STORE"

// TestBrokenStoreHelper runs Run on the store named by $STORETEST_BROKEN_STORE.
// It runs only in the child processes of TestKitFailsBrokenStores.
func TestBrokenStoreHelper(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as a child process of TestKitFailsBrokenStores")
	}
	newStore, ok := stores[name]
	if !ok {
		t.Fatalf("no store named %q", name)
	}
	storetest.Run(t, func(*testing.T) storetest.Store { return newStore() })
}

// childResult is what one child process running TestBrokenStoreHelper did.
type childResult struct {
	err                   error // from exec: nil when the child exited 0
	output                string
	passed, failed, skipd []string // rules, by their subtest's result
}

// runChild runs Run on the named store in a child process.
func runChild(store string) childResult {
	c := testchild.Run("^TestBrokenStoreHelper$", brokenEnv+"="+store)
	return childResult{
		err:    c.Err,
		output: c.Output,
		passed: c.Subtests("TestBrokenStoreHelper", "PASS"),
		failed: c.Subtests("TestBrokenStoreHelper", "FAIL"),
		skipd:  c.Subtests("TestBrokenStoreHelper", "SKIP"),
	}
}

// runChildren runs a child for each store at once (they spend most of their
// time waiting for sessions to expire) and returns their results by store.
func runChildren(names []string) map[string]childResult {
	var (
		mu      sync.Mutex
		results = make(map[string]childResult)
		wg      sync.WaitGroup
		slots   = make(chan struct{}, 32) // a bound, not a throttle: children mostly sleep
	)
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			r := runChild(name)
			<-slots
			mu.Lock()
			results[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return results
}

// TestKitFailsBrokenStores runs Run, in child processes, over stores each
// broken in one way, and checks that each fails the rule it breaks; and over
// the correct reference store, which must pass every rule, and its plain
// version, which must pass every rule but the optional ones, skipped.
func TestKitFailsBrokenStores(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Run over 26 stores, 10 seconds or more each")
	}
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	results := runChildren(slices.Sorted(maps.Keys(stores)))

	t.Run("reference", func(t *testing.T) {
		r := results["reference"]
		if r.err != nil || len(r.failed) > 0 || !sameSet(r.passed, rules) {
			t.Fatalf("Run on the reference store: exit %v, failed %q, passed %q; want success, every rule passed\n%s",
				r.err, r.failed, r.passed, r.output)
		}
	})
	t.Run("reference-plain", func(t *testing.T) {
		r := results["reference-plain"]
		mandatory := slices.DeleteFunc(slices.Clone(rules), func(rule string) bool { return slices.Contains(optionalRules, rule) })
		if r.err != nil || len(r.failed) > 0 || !sameSet(r.passed, mandatory) || !sameSet(r.skipd, optionalRules) {
			t.Fatalf("Run on the plain reference store: exit %v, failed %q, passed %q, skipped %q; want success, %q skipped, the rest passed\n%s",
				r.err, r.failed, r.passed, r.skipd, optionalRules, r.output)
		}
	})
	for _, b := range breakages {
		t.Run(b.store, func(t *testing.T) {
			r := results[b.store]
			var exit *exec.ExitError
			if !errors.As(r.err, &exit) || exit.ExitCode() == 0 {
				t.Errorf("Run on store %s: exit %v; want a non-zero exit status", b.store, r.err)
			}
			if !slices.Contains(r.failed, b.rule) {
				t.Errorf("Run on store %s failed rules %q; want %s among them", b.store, r.failed, b.rule)
			}
			if t.Failed() {
				t.Logf("child output:\n%s", r.output)
			} else {
				t.Logf("failed rules: %q", r.failed)
			}
		})
	}
}

// TestEveryRuleHasABrokenStore checks that the breakages cover every rule and
// that every store named in them exists.
func TestEveryRuleHasABrokenStore(t *testing.T) {
	covered := make(map[string]bool)
	for _, b := range breakages {
		if _, ok := stores[b.store]; !ok {
			t.Errorf("breakage names store %q, which does not exist", b.store)
		}
		if !slices.Contains(rules, b.rule) {
			t.Errorf("breakage %q names rule %q, which does not exist", b.store, b.rule)
		}
		covered[b.rule] = true
	}
	for _, rule := range rules {
		if !covered[rule] {
			t.Errorf("no broken store proves the kit can fail rule %s", rule)
		}
	}
	if len(stores) != len(breakages)+2 {
		t.Errorf("%d stores for %d breakages; want every store but the two references used", len(stores), len(breakages))
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
		storetest.Bench(b, func(*testing.B) storetest.Store { return newRefStore() })
	})
	b.Run("store=plain", func(b *testing.B) {
		storetest.Bench(b, func(*testing.B) storetest.Store { return plainStore{newRefStore()} })
	})
}
