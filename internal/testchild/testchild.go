// SPDX-License-Identifier: MIT

// Package testchild runs tests of the running test binary in a child
// process, for the tests that must watch another test fail: a failing test
// fails its whole binary, so a test that expects a failure runs the failing
// one in a child and reads the child's -test.v output.
//
// The child runs the same binary, so the test it runs is in the same file
// set as its parent; it usually tells from an environment variable that it
// is a child (and skips when the variable is unset, as in a plain go test).
package testchild

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
)

// childTimeout bounds a child's run (its -test.timeout): generous, since the
// children of a test often run together on a loaded machine.
const childTimeout = "5m"

// Result is what one child process did.
type Result struct {
	// Err is nil when the child exited with status 0; otherwise what
	// os/exec returned, or why the child could not be started.
	Err error
	// Output is the child's -test.v output, stdout and stderr together.
	Output string
}

// Run runs, in a child process, the tests of this test binary that run
// selects (a -test.run pattern), verbosely and once, with env (KEY=value
// entries) in its environment in place of what this process's environment
// sets for the same keys. It returns once the child has exited.
func Run(run string, env ...string) Result {
	exe, err := os.Executable()
	if err != nil {
		return Result{Err: err}
	}
	cmd := exec.Command(exe, "-test.run="+run, "-test.v", "-test.count=1", "-test.timeout="+childTimeout)
	// Of duplicate keys, os/exec passes on the last.
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return Result{Err: err, Output: string(out)}
}

// ExitedNonZero reports whether the child ran and exited with a status other
// than 0, as a test binary does when a test failed.
func (r Result) ExitedNonZero() bool {
	var exit *exec.ExitError
	return errors.As(r.Err, &exit) && exit.ExitCode() > 0
}

// Of returns how the child reports the test or subtest called name (as in
// "TestX/case"): "PASS", "FAIL", "SKIP", or "" when its output has no result
// line for it.
func (r Result) Of(name string) string {
	re := regexp.MustCompile(`(?m)^\s*--- (PASS|FAIL|SKIP): ` + regexp.QuoteMeta(name) + ` \(`)
	if m := re.FindStringSubmatch(r.Output); m != nil {
		return m[1]
	}
	return ""
}

// Subtests returns the names, in the order of the output, of the direct
// subtests of test whose result was result ("PASS", "FAIL" or "SKIP").
func (r Result) Subtests(test, result string) []string {
	re := regexp.MustCompile(`(?m)^\s*--- ` + regexp.QuoteMeta(result) + `: ` + regexp.QuoteMeta(test) + `/([^/\s]+) \(`)
	var names []string
	for _, m := range re.FindAllStringSubmatch(r.Output, -1) {
		names = append(names, m[1])
	}
	return names
}
