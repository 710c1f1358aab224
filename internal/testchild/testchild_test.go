// SPDX-License-Identifier: MIT

package testchild_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/golangcollege/memstore/internal/testchild"
)

// childEnv, set, makes TestChild run its subtests: it is set only in the
// child processes of TestRun.
const childEnv = "TESTCHILD_CHILD"

// TestChild passes, fails and skips one subtest each, and logs the value of
// $TESTCHILD_SEEN. It runs only in the child processes of TestRun.
func TestChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("runs only as a child process of TestRun")
	}
	t.Logf("seen=%s.", os.Getenv("TESTCHILD_SEEN"))
	t.Run("passes", func(t *testing.T) {})
	t.Run("fails", func(t *testing.T) { t.Fail() })
	t.Run("skips", func(t *testing.T) { t.Skip() })
}

// TestRun runs TestChild in a child process and checks what Run reports of
// it: each result, the subtests by result, the exit status, and that env
// replaces this process's value of a variable.
func TestRun(t *testing.T) {
	t.Setenv("TESTCHILD_SEEN", "parent")
	c := testchild.Run("^TestChild$", childEnv+"=1", "TESTCHILD_SEEN=child")
	if !c.ExitedNonZero() {
		t.Errorf("ExitedNonZero() = false (err %v); want true: a subtest failed", c.Err)
	}
	for name, want := range map[string]string{
		"TestChild":        "FAIL",
		"TestChild/passes": "PASS",
		"TestChild/fails":  "FAIL",
		"TestChild/skips":  "SKIP",
		"TestChild/absent": "",
	} {
		if got := c.Of(name); got != want {
			t.Errorf("Of(%q) = %q; want %q", name, got, want)
		}
	}
	for result, want := range map[string][]string{"PASS": {"passes"}, "FAIL": {"fails"}, "SKIP": {"skips"}} {
		if got := c.Subtests("TestChild", result); !slices.Equal(got, want) {
			t.Errorf("Subtests(TestChild, %s) = %q; want %q", result, got, want)
		}
	}
	if want := "seen=child."; !strings.Contains(c.Output, want) {
		t.Errorf("the child did not see TESTCHILD_SEEN=child (want %q in its output):\n%s", want, c.Output)
	}
	if t.Failed() {
		t.Logf("child output:\n%s", c.Output)
	}

	// A child whose tests all pass exits with status 0.
	ok := testchild.Run("^TestChild$/^passes$", childEnv+"=1")
	if ok.Err != nil || ok.ExitedNonZero() || ok.Of("TestChild/passes") != "PASS" {
		t.Errorf("a passing child: err %v, result %q; want nil, PASS\n%s", ok.Err, ok.Of("TestChild/passes"), ok.Output)
	}
}
