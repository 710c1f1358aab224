// SPDX-License-Identifier: MIT

package integration

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/golangcollege/memstore/internal/testchild"
	"github.com/golangcollege/memstore/storetest"
)

// TestStores and BenchmarkStores run the storetest kit over every store of
// stores (stores_test.go), as subtests and sub-benchmarks named store=NAME,
// so that benchstat lines the stores up from one run:
//
//	go test -run '^$' -bench BenchmarkStores -benchtime 200ms -count 6 > stores.txt
//	benchstat -col /store stores.txt
//
// Where a store needs a program that is not installed (redis-server,
// PostgreSQL), its cases fail with a message saying how to install it,
// unless the variable that skips them is set (MEMSTORE_SKIP_REDIS=1,
// MEMSTORE_SKIP_POSTGRES=1). Where it is installed they always run.

// TestStores runs storetest.Run over every store, each in a subtest named
// store=NAME, skipping only the rules a store is known to break (which
// TestPeerStoresBreakRules checks). It then checks that Run checked exactly
// the rules of the conformance table in tableFile (docs/comparison.md), and
// skipped exactly the rules the store's skips name, and that the table's
// column for the store says so. A store outside this process also checks, as
// it is released, that the kit left its database as it found it: empty.
func TestStores(t *testing.T) {
	table := readConformanceTable(t)
	for i, k := range stores {
		t.Run("store="+k.name, func(t *testing.T) {
			t.Parallel() // the rules spend most of their time waiting for sessions to expire
			newStore := k.open(t)
			var (
				mu      sync.Mutex
				results = make(map[string]string) // by rule: PASS, FAIL or SKIP
			)
			storetest.Run(t, func(t testing.TB) storetest.Store {
				rule := t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]
				t.Cleanup(func() {
					mu.Lock()
					defer mu.Unlock()
					results[rule] = testResult(t)
				})
				if why, ok := k.breaks[rule]; ok {
					t.Skipf("store %s breaks this rule (%s); TestPeerStoresBreakRules asserts that it still does", k.name, why)
				}
				return newStore(t)
			})
			checkResults(t, k, results, table.rules)
			for _, rule := range table.rules {
				if cell := table.cell(i, rule); !cellMatches(k, rule, cell) {
					want, _ := wantCell(k, rule)
					t.Errorf("the conformance table in %s says %q of store %s (column %d) and rule %s; want %q", tableFile, cell, k.name, i+1, rule, want)
				}
			}
		})
	}
}

// testResult returns how t, whose test function has returned, ended: PASS,
// FAIL or SKIP.
func testResult(t testing.TB) string {
	switch {
	case t.Failed():
		return "FAIL"
	case t.Skipped():
		return "SKIP"
	default:
		return "PASS"
	}
}

// checkResults fails t unless results, the result of each rule storetest.Run
// checked k against, has every rule of rules (the conformance table's) and
// no other, and a rule was skipped exactly when k's skips or breaks name it.
// A rule that failed is not reported again: its subtest was.
func checkResults(t *testing.T, k storeKind, results map[string]string, rules []string) {
	t.Helper()
	for _, rule := range rules {
		got, ran := results[rule]
		want := "PASS"
		if _, ok := k.skips[rule]; ok {
			want = "SKIP"
		}
		if _, ok := k.breaks[rule]; ok {
			want = "SKIP"
		}
		switch {
		case !ran:
			t.Errorf("storetest.Run did not check rule %s, a row of the conformance table in %s; remove the row", rule, tableFile)
		case got == "SKIP" && want == "PASS":
			t.Errorf("storetest.Run skipped rule %s for store %s; want it checked", rule, k.name)
		case got == "PASS" && want == "SKIP":
			t.Errorf("storetest.Run checked rule %s for store %s, which it used to skip (%s), and it passed: the store has changed; update its skips and the conformance table in %s",
				rule, k.name, k.skips[rule], tableFile)
		}
	}
	for rule := range results {
		if !slices.Contains(rules, rule) {
			t.Errorf("storetest.Run checked rule %s, which the conformance table in %s has no row for; add one", rule, tableFile)
		}
	}
}

// BenchmarkStores runs storetest.Bench over every store but those that say
// why they are unmeasured, each in a sub-benchmark named store=NAME, for benchstat -col /store. A database
// server is started once per run of its store's sub-benchmark and stopped
// when it ends.
func BenchmarkStores(b *testing.B) {
	for _, k := range stores {
		if k.unmeasured != "" {
			continue
		}
		b.Run("store="+k.name, func(b *testing.B) {
			newStore := k.open(b)
			storetest.Bench(b, newStore)
		})
	}
}

// childEnv names, in a child process, the store TestStoresChild runs
// storetest.Run over.
const childEnv = "MEMSTORE_STORES_CHILD"

// TestStoresChild runs storetest.Run over the store named by
// $MEMSTORE_STORES_CHILD, every rule included. It runs only in the child
// processes of TestPeerStoresBreakRules and TestProgramMissing, which choose
// the rules with -test.run.
func TestStoresChild(t *testing.T) {
	name := os.Getenv(childEnv)
	if name == "" {
		t.Skip("runs only as a child process of TestPeerStoresBreakRules and TestProgramMissing")
	}
	k, ok := storeNamed(name)
	if !ok {
		t.Fatalf("no store named %q", name)
	}
	newStore := k.open(t)
	storetest.Run(t, newStore)
}

// runStoresChild runs TestStoresChild over the store called name in a child
// process, with only the subtests that runPattern (the part of -test.run
// after "^TestStoresChild$/") selects, and env in its environment. Unless
// env sets them, the variables that skip a store's cases are cleared in the
// child.
func runStoresChild(name, runPattern string, env ...string) testchild.Result {
	run := "^TestStoresChild$"
	if runPattern != "" {
		run += "/" + runPattern
	}
	base := []string{childEnv + "=" + name}
	for _, skipEnv := range skipEnvs() {
		base = append(base, skipEnv+"=") // env, after, may set it again
	}
	return testchild.Run(run, append(base, env...)...)
}

// TestPeerStoresBreakRules runs, in a child process, each rule a store is
// known to break, and asserts that the store still fails it. When one of
// these fails, the store has been fixed: remove the rule from its breaks, and
// the failure from the conformance table in tableFile.
func TestPeerStoresBreakRules(t *testing.T) {
	if !slices.ContainsFunc(stores, func(k storeKind) bool { return len(k.breaks) > 0 }) {
		t.Skip("no store is known to break a storetest rule: TestStores checks every rule of each")
	}
	for _, k := range stores {
		for rule, why := range k.breaks {
			t.Run("store="+k.name+"/"+rule, func(t *testing.T) {
				t.Parallel()
				if k.requires != nil {
					k.requires.find(t) // fails, or skips, here rather than in the child
				}
				c := runStoresChild(k.name, "^"+regexp.QuoteMeta(rule)+"$")
				if got := c.Of("TestStoresChild/" + rule); got != "FAIL" || !c.ExitedNonZero() {
					t.Fatalf("storetest.Run over store %s, rule %s: result %q, exit %v; want FAIL and a non-zero exit (known breakage: %s). "+
						"Has the store been fixed? Then remove the rule from its breaks, and the failure from the conformance table in %s.\n%s",
						k.name, rule, got, c.Err, why, tableFile, c.Output)
				}
				t.Logf("store %s still breaks rule %s (%s)", k.name, rule, why)
			})
		}
	}
}

// TestProgramMissing checks, in child processes that cannot find the program
// a store needs, that the store's cases fail with a message saying how to
// install it, and are skipped instead when its skip variable is 1.
func TestProgramMissing(t *testing.T) {
	// The child's only rule never runs: the test fails or skips before it.
	const pattern = "^unknown-token-not-found$"
	for _, k := range stores {
		if k.requires == nil {
			continue
		}
		hidden := k.requires.hide(t.TempDir())
		skipEnv := k.requires.skipEnv
		t.Run("store="+k.name+"/fails", func(t *testing.T) {
			t.Parallel()
			c := runStoresChild(k.name, pattern, hidden...)
			if got := c.Of("TestStoresChild"); got != "FAIL" || !c.ExitedNonZero() {
				t.Fatalf("with %q: result %q, exit %v; want FAIL and a non-zero exit\n%s", hidden, got, c.Err, c.Output)
			}
			for _, want := range append(k.requires.advice, skipEnv+"=1") {
				if !strings.Contains(c.Output, want) {
					t.Errorf("with %q, the failure does not say %q:\n%s", hidden, want, c.Output)
				}
			}
		})
		t.Run("store="+k.name+"/skipped-when-asked", func(t *testing.T) {
			t.Parallel()
			c := runStoresChild(k.name, pattern, append(hidden, skipEnv+"=1")...)
			if got := c.Of("TestStoresChild"); got != "SKIP" || c.Err != nil {
				t.Fatalf("with %q and %s=1: result %q, exit %v; want SKIP and a zero exit\n%s", hidden, skipEnv, got, c.Err, c.Output)
			}
			if !strings.Contains(c.Output, skipEnv+"=1") {
				t.Errorf("the skip does not give %s=1 as its reason:\n%s", skipEnv, c.Output)
			}
		})
	}
}
