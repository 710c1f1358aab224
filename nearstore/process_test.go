// SPDX-License-Identifier: MIT

package nearstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// childAddrEnv names the environment variable that makes the test binary a
// child instance: TestChildInstance then serves commands on stdin.
const childAddrEnv = "NEARSTORE_CHILD_REDIS"

// TestChildInstance is the second process of TestTwoProcesses: with
// $NEARSTORE_CHILD_REDIS set it opens a Store on that server and answers
// lines on stdin ("find TOKEN", "commit TOKEN DATA"), one line each on
// stdout, until stdin ends. Without it, it returns at once.
func TestChildInstance(t *testing.T) {
	addr := os.Getenv(childAddrEnv)
	if addr == "" {
		return
	}
	s := newStore(t, &redisServer{port: portOf(t, addr)})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 2 && f[0] == "find":
			b, ok, err := s.Find(f[1])
			fmt.Printf("found=%v data=%q err=%v\n", ok, b, err)
		case len(f) == 3 && f[0] == "commit":
			err := s.Commit(f[1], []byte(f[2]), time.Now().Add(time.Hour))
			fmt.Printf("deleted=%v err=%v\n", errors.Is(err, memstore.ErrDeleted), err)
		default:
			t.Fatalf("child: bad command %q", in.Text())
		}
	}
}

func portOf(t testing.TB, addr string) int {
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port); err != nil {
		t.Fatalf("bad address %q", addr)
	}
	return port
}

// TestTwoProcesses: two processes, each with its Store over one Redis: a
// write or a delete in one is seen by the other within the heartbeat
// timeout, and the other's Commit of the deleted token is
// refused.
func TestTwoProcesses(t *testing.T) {
	srv := startRedis(t)
	parent := newStore(t, srv)
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildInstance$", "-test.count=1")
	cmd.Env = append(os.Environ(), childAddrEnv+"="+srv.addr())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("the child process: %v", err)
		}
	}()
	out := bufio.NewReader(stdout)
	ask := func(line string) string {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatal(err)
		}
		reply, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("the child's reply to %q: %v", line, err)
		}
		return strings.TrimSpace(reply)
	}

	tok := newToken()
	mustCommit(t, parent, tok, "v1", time.Now().Add(time.Hour))
	if got := ask("find " + tok); got != `found=true data="v1" err=<nil>` {
		t.Fatalf("the child's Find: %s", got)
	}
	ask("find " + tok)
	mustCommit(t, parent, tok, "v2", time.Now().Add(time.Hour))
	written := time.Now()
	for {
		got := ask("find " + tok)
		if got == `found=true data="v2" err=<nil>` {
			break
		}
		if time.Since(written) > DefaultHeartbeat {
			t.Fatalf("the child gives %s %v after the parent's Commit; want v2 within %v", got, time.Since(written), DefaultHeartbeat)
		}
	}
	if err := parent.Delete(tok); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for {
		got := ask("find " + tok)
		if got == `found=false data="" err=<nil>` {
			break
		}
		if time.Since(deleted) > DefaultHeartbeat {
			t.Fatalf("the child gives %s %v after the parent's Delete; want not found within %v", got, time.Since(deleted), DefaultHeartbeat)
		}
	}
	if got := ask("commit " + tok + " revived"); !strings.HasPrefix(got, "deleted=true") {
		t.Errorf("the child's Commit after the parent's Delete: %s; want memstore.ErrDeleted", got)
	}
}
