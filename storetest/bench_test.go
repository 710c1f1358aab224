// SPDX-License-Identifier: MIT

package storetest_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/golangcollege/memstore/storetest"
)

// tracingStore is a correct store that remembers, for each call after the
// store was filled, whether the token was the very string committed first
// (the same bytes in memory) or a copy of its own, and which session it
// named, in call order.
type tracingStore struct {
	mu        sync.Mutex
	committed map[string]*byte // token to the memory of the string first committed
	index     map[string]int   // token to the order it was first committed in
	calls     []tracedCall
	inner     *refStore
}

type tracedCall struct {
	op      string // find, commit or delete
	same    bool   // the token was the string first committed, not a copy
	session int    // the order its token was first committed in, -1 if never
}

func newTracingStore() *tracingStore {
	return &tracingStore{committed: make(map[string]*byte), index: make(map[string]int), inner: newRefStore()}
}

func (s *tracingStore) trace(op, token string, commit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first, ok := s.committed[token]
	if !ok && commit {
		s.committed[token] = unsafe.StringData(token)
		s.index[token] = len(s.index)
		return
	}
	session := -1
	if ok {
		session = s.index[token]
	}
	s.calls = append(s.calls, tracedCall{op, ok && first == unsafe.StringData(token), session})
}

func (s *tracingStore) Find(token string) ([]byte, bool, error) {
	s.trace("find", token, false)
	return s.inner.Find(token)
}

func (s *tracingStore) Commit(token string, b []byte, expiry time.Time) error {
	s.trace("commit", token, true)
	return s.inner.Commit(token, b, expiry)
}

func (s *tracingStore) Delete(token string) error {
	s.trace("delete", token, false)
	return s.inner.Delete(token)
}

// headlineWorkloads are the workloads of Bench that must hand the store
// fresh copies of the committed tokens drawn at random (true), and the
// -inorder ones that hand back the committed strings in turn (false).
var headlineWorkloads = map[string]bool{
	"find-hit":                     true,
	"commit":                       true,
	"parallel-mixed-90-10":         true,
	"find-hit-inorder":             false,
	"commit-inorder":               false,
	"parallel-mixed-90-10-inorder": false,
}

// BenchmarkTracedWorkloads runs Bench over a store that traces the tokens it
// is handed, and fails unless each workload of headlineWorkloads handed it
// what it should: see TestBenchHeadlineWorkloadsUseFreshTokensAtRandom,
// which runs it with enough calls to tell an order. Its figures are those
// of a map under a mutex that also records every call.
func BenchmarkTracedWorkloads(b *testing.B) {
	var mu sync.Mutex
	traced := make(map[string]*tracingStore) // by workload: its last run
	storetest.Bench(b, func(tb testing.TB) storetest.Store {
		s := newTracingStore()
		mu.Lock()
		defer mu.Unlock()
		traced[tb.Name()[strings.LastIndexByte(tb.Name(), '/')+1:]] = s
		return s
	})
	for workload, fresh := range headlineWorkloads {
		s := traced[workload]
		if s == nil {
			b.Errorf("Bench ran no workload %s", workload)
			continue
		}
		var timed []tracedCall // the calls before the kit's clean-up deletes
		for _, call := range s.calls {
			if call.op == "delete" {
				break
			}
			timed = append(timed, call)
		}
		same, inTurn := 0, 0
		for i, call := range timed {
			if call.session < 0 {
				b.Fatalf("%s: call %d (%s) named a token never committed", workload, i, call.op)
			}
			if call.same {
				same++
			}
			if i > 0 && call.session == timed[i-1].session+1 {
				inTurn++
			}
		}
		b.Logf("traced %s: %d calls, %d with the committed string, %d in commit order", workload, len(timed), same, inTurn)
		// An order shows only over many calls, and goroutines taking
		// tokens in turn interleave their calls.
		order := len(timed) >= 100 && !strings.HasPrefix(workload, "parallel")
		if fresh && (same > 0 || order && inTurn > len(timed)/10) {
			b.Errorf("%s: %d of %d calls passed the committed string itself, %d came in commit order; want fresh copies drawn at random",
				workload, same, len(timed), inTurn)
		}
		if !fresh && (same < len(timed) || order && inTurn < len(timed)/2) {
			b.Errorf("%s: %d of %d calls passed the committed string itself, %d came in commit order; want the committed strings in turn",
				workload, same, len(timed), inTurn)
		}
	}
}

// TestBenchHeadlineWorkloadsUseFreshTokensAtRandom: the workloads without
// -inorder hand the store copies of the committed tokens, as a request
// parses its own from a cookie, drawn at random; the -inorder ones hand
// back the committed strings in commit order. A Go map finds the committed
// string by its pointer, without reading the key's bytes, so the headline
// figures would flatter it otherwise. It runs BenchmarkTracedWorkloads in
// a child, where sub-benchmarks have their names, with 200 calls each.
func TestBenchHeadlineWorkloadsUseFreshTokensAtRandom(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "-test.run=^$", "-test.bench=^BenchmarkTracedWorkloads$",
		"-test.benchtime=200x", "-test.count=1", "-test.v").CombinedOutput()
	if err != nil {
		t.Fatalf("BenchmarkTracedWorkloads: %v\n%s", err, out)
	}
	for workload := range headlineWorkloads {
		if !bytes.Contains(out, []byte("traced "+workload+": 200 calls")) {
			t.Errorf("BenchmarkTracedWorkloads traced no 200 calls of %s:\n%s", workload, out)
		}
	}
}
