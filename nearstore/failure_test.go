// SPDX-License-Identifier: MIT

package nearstore

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// findFor finds token in s with a short deadline, for a server that may not
// answer.
func findFor(s *Store, token string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	b, ok, err := s.FindCtx(ctx, token)
	return string(b), ok, err
}

// lastServedAfter calls Find of token on s until the local copy is
// bypassed, and returns how long after since the last Find that gave want
// began. Redis does not answer meanwhile (stopped or killed), so only the
// local copy can have given it.
func lastServedAfter(t *testing.T, s *Store, token, want string, since time.Time) time.Duration {
	t.Helper()
	var last time.Duration
	waitFor(t, "the local copy to be bypassed", func() bool {
		began := time.Now()
		if got, ok, err := findFor(s, token); err == nil && ok && got == want {
			last = began.Sub(since)
		}
		return s.Stats().Bypassed
	})
	return last
}

// TestRedisHung: with redis-server stopped (SIGSTOP) the subscription falls
// silent; within the heartbeat timeout the local copy is bypassed, and
// every Find waits for Redis (here, until its deadline). Once the server
// resumes (SIGCONT) the store subscribes again, flushed, and serves as
// before.
func TestRedisHung(t *testing.T) {
	srv := startRedis(t)
	a, b := newStore(t, srv), newStore(t, srv)
	tok := newToken()
	mustCommit(t, a, tok, "v1", time.Now().Add(time.Hour))
	holdLocally(t, b, tok)
	flushes := b.Stats().Flushes

	srv.signal(syscall.SIGSTOP)
	stopped := time.Now()
	last := lastServedAfter(t, b, tok, "v1", stopped)
	t.Logf("the local copy answered for %v after SIGSTOP; %+v", last, b.Stats())
	if last > DefaultHeartbeat {
		t.Errorf("B answered from its local copy %v after the server stopped; want at most the heartbeat timeout, %v", last, DefaultHeartbeat)
	}
	if _, _, err := findFor(b, tok); err == nil {
		t.Errorf("Find on B while the server is stopped and the copy bypassed: no error; want the read of Redis to fail")
	}

	srv.signal(syscall.SIGCONT)
	waitFor(t, "B to subscribe again", func() bool { return !b.Stats().Bypassed })
	st := b.Stats()
	if st.Reconnects == 0 || st.Flushes <= flushes || st.LastError == nil {
		t.Errorf("after SIGCONT, B's Stats: %+v; want a reconnect, a flush and the last error", st)
	}
	mustCommit(t, a, tok, "v2", time.Now().Add(time.Hour))
	waitFor(t, "B to find v2", func() bool { got, _ := mustFind(t, b, tok); return got == "v2" })
}

// TestRedisKilledAndRestartedEmpty: a killed server ends the subscription at
// once; B stops answering from its copy and reads fail. The server restarted
// empty, B subscribes again with its copy flushed: it never gives the
// session the new server does not hold.
func TestRedisKilledAndRestartedEmpty(t *testing.T) {
	srv := startRedis(t)
	a, b := newStore(t, srv), newStore(t, srv)
	tok := newToken()
	mustCommit(t, a, tok, "v1", time.Now().Add(time.Hour))
	holdLocally(t, b, tok)

	srv.kill()
	killed := time.Now()
	last := lastServedAfter(t, b, tok, "v1", killed)
	t.Logf("the local copy answered for %v after the kill", last)
	if last > DefaultHeartbeat {
		t.Errorf("B answered from its local copy %v after the server was killed; want at most %v", last, DefaultHeartbeat)
	}
	if _, _, err := findFor(b, tok); err == nil {
		t.Errorf("Find on B with the server down: no error; want one")
	}

	srv.restart()
	for _, s := range []*Store{a, b} {
		waitFor(t, "the store to subscribe again", func() bool { return !s.Stats().Bypassed })
		// A connection the client held to the killed server may fail one
		// command more before the client drops it: a Find may err, never
		// answer from before the restart.
		waitFor(t, "the store to read Redis again", func() bool {
			got, found, err := s.Find(tok)
			if found {
				t.Errorf("after a restart of the server, empty, Find = %q, true; want not found", got)
			}
			return err == nil
		})
		if got, ok := mustFind(t, s, tok); ok {
			t.Errorf("after a restart of the server, empty, Find = %q, true; want not found", got)
		}
	}
	mustCommit(t, a, tok, "v2", time.Now().Add(time.Hour))
	if got, _ := mustFind(t, b, tok); got != "v2" {
		t.Errorf("Find on B after the restart = %q; want v2", got)
	}
}

// TestCloseReleasesEverything: Close ends every goroutine the stores
// started and every connection they opened, and every method then returns
// ErrClosed.
func TestCloseReleasesEverything(t *testing.T) {
	srv := startRedis(t)
	probe := srv.client(t)
	clients := func() int {
		list, err := probe.Do(context.Background(), probe.B().ClientList().Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(strings.TrimSpace(list), "\n") + 1
	}
	before := clients()
	goroutines := runtime.NumGoroutine()

	stores := make([]*Store, 3)
	for i := range stores {
		s, err := Dial(srv.clientOption())
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
		tok := newToken()
		mustCommit(t, s, tok, "x", time.Now().Add(time.Hour))
		mustFind(t, s, tok)
		if _, err := s.All(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	waitFor(t, "the connections to close", func() bool { return clients() == before })
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines a minute after Close; %d before the stores. Their stacks:\n%s",
				runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
		}
		runtime.GC() // a store that a test before this one forgot to close goes with its goroutines
		time.Sleep(5 * time.Millisecond)
	}

	s := stores[0]
	tok := newToken()
	_, _, ferr := s.Find(tok)
	_, aerr := s.All()
	for _, err := range []error{ferr, s.Commit(tok, nil, time.Now().Add(time.Hour)), s.Delete(tok), aerr} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("a method after Close returned %v; want ErrClosed", err)
		}
	}
}
