// SPDX-License-Identifier: MIT

package storetest

import (
	"bytes"
	"testing"
)

func TestBenchPayloadIsTheSizeOfARealSession(t *testing.T) {
	if n := len(benchPayload()); n < 150 || n > 165 {
		t.Errorf("the benchmark payload is %d bytes; want about 157, the gob encoding of a small scs session", n)
	}
}

func TestDataIsDeterministicAndDistinct(t *testing.T) {
	if !bytes.Equal(data("a"), data("a")) {
		t.Error("data(\"a\") differs between calls; the rules compare it with what they committed")
	}
	if bytes.Equal(data("a"), data("b")) {
		t.Error("data(\"a\") == data(\"b\"); want sessions with different labels to differ")
	}
}

func TestTokensAreRandomAndShapedLikeScs(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		tok := newToken()
		if len(tok) != 43 || seen[tok] {
			t.Fatalf("newToken() = %q (%d characters, seen before: %v); want 43 new characters", tok, len(tok), seen[tok])
		}
		seen[tok] = true
	}
}
