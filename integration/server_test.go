// SPDX-License-Identifier: MIT

package integration

import (
	"bytes"
	"net"
	"os/exec"
	"sync"
	"testing"
)

// What the launchers of the database servers the tests start share.

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stopWithTestBinary arranges, where the system allows it, for cmd to be
// killed when the test binary dies without stopping it (as on a -timeout
// panic, which runs no cleanup). process_linux_test.go sets it on Linux;
// elsewhere such a server is left running.
var stopWithTestBinary = func(*exec.Cmd) {}
