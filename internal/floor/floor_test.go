// SPDX-License-Identifier: MIT

package floor

import (
	"bytes"
	"fmt"
	"testing"
)

// TestTable: the floor finds what was committed last under each token,
// zero-copy, misses what was not, refuses a Commit once the arena is full,
// and after Compact finds the same and has room again. A floor that lost
// sessions would measure less work than a store does.
func TestTable(t *testing.T) {
	const n = 1000
	tok := func(i int) string { return fmt.Sprintf("%043d", i) }
	data := func(i, round int) []byte { return bytes.Repeat([]byte{byte(i + round)}, 100+i%29) }
	tb := New(n, 43+128, n)
	round := 0
	for i := range n {
		if !tb.Commit(tok(i), data(i, round)) {
			t.Fatalf("Commit %d refused in an empty table", i)
		}
	}
	check := func(when string) {
		t.Helper()
		for i := range n {
			got, found := tb.Find(tok(i))
			if !found || !bytes.Equal(got, data(i, round)) || cap(got) != len(got) {
				t.Fatalf("%s: Find(%d) = %d bytes (cap %d), %v; want the %d bytes of round %d, cap == len", when, i, len(got), cap(got), found, len(data(i, round)), round)
			}
		}
		if _, found := tb.Find(tok(n)); found {
			t.Fatalf("%s: Find of a token never committed found it", when)
		}
	}
	check("filled")

	refused := false
	for round = 1; round < 5 && !refused; round++ {
		for i := range n {
			if !tb.Commit(tok(i), data(i, round)) {
				refused = true
				tb.Compact()
				if !tb.Commit(tok(i), data(i, round)) {
					t.Fatalf("Commit refused right after Compact, %d bytes free", tb.Free())
				}
			}
		}
		check(fmt.Sprintf("round %d", round))
	}
	if !refused {
		t.Fatal("four overwrites of every session fit an arena sized for two: Commit never refused")
	}
	round--
	tb.Compact()
	check("compacted")
	if free := tb.Free(); free < n*(43+128)/2 {
		t.Fatalf("after Compact, %d bytes free; want at least half the arena", free)
	}
}
