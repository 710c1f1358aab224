// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/golangcollege/memstore"
)

// TestParseFlags: the defaults are those the command's doc gives, the flags
// set what they name, and bad input is refused.
func TestParseFlags(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags("example", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := (config{addr: ":4000", cleanup: time.Minute}); cfg != want {
		t.Fatalf("defaults are %+v, want %+v", cfg, want)
	}

	cfg, err = parseFlags("example", []string{
		"-addr", "127.0.0.1:0", "-cleanup", "250ms", "-max-bytes", "1048576",
		"-snapshot", "/tmp/sessions.snap", "-snapshot-ignore-bad",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		addr: "127.0.0.1:0", cleanup: 250 * time.Millisecond, maxBytes: 1 << 20,
		snapshot: "/tmp/sessions.snap", snapshotIgnoreBad: true,
	}
	if cfg != want {
		t.Fatalf("parsed %+v, want %+v", cfg, want)
	}
	cfg, err = parseFlags("example", []string{"-dir", "/tmp/sessions"}, io.Discard)
	if want := (config{addr: ":4000", cleanup: time.Minute, dir: "/tmp/sessions"}); err != nil || cfg != want {
		t.Fatalf("-dir: parsed %+v, %v; want %+v", cfg, err, want)
	}
	if _, err := parseFlags("example", []string{"-dir", "d", "-snapshot", "f"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-dir and -snapshot") {
		t.Errorf("-dir with -snapshot gave %v, want an error naming both", err)
	}

	for _, args := range [][]string{
		{"-addr", ":99999"},
		{"-addr", "localhost"},
		{"-max-bytes", "100"}, // no session fits: see TestMaxBytesTooSmall
		{"-cleanup", "often"},
		{"-cleanup", "-1s"},
		{"-max-bytes", "-1"},
		{"-max-bytes", "1MiB"},
		{"-snapshot-ignore-bad"}, // without -snapshot: most likely a mistake
		{"-dir", "d", "-snapshot", "f"},
		{"-dir", "d", "-snapshot-ignore-bad"},
		{"-nosuchflag"},
		{"stray-argument"},
	} {
		var out strings.Builder
		if _, err := parseFlags("example", args, &out); err == nil {
			t.Errorf("parseFlags(%q) accepted bad input", args)
		} else if out.Len() == 0 {
			t.Errorf("parseFlags(%q) failed without telling the user", args)
		}
	}
	if _, err := parseFlags("example", []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h gave %v, want flag.ErrHelp", err)
	}

	// An error names the flag and its value first, so that the user sees
	// at once which to change.
	for _, tc := range []struct {
		args   []string
		prefix string
	}{
		{[]string{"-addr", ":99999"}, "-addr :99999: invalid port"},
		{[]string{"-addr", "localhost"}, "-addr localhost: not host:port"},
		{[]string{"-max-bytes", "100"}, "-max-bytes 100: too small"},
		{[]string{"-cleanup", "-1s"}, "-cleanup -1s: "},
	} {
		var out strings.Builder
		if _, err := parseFlags("example", tc.args, &out); err == nil || !strings.HasPrefix(err.Error(), tc.prefix) {
			t.Errorf("parseFlags(%q) gave %v; want an error beginning %q", tc.args, err, tc.prefix)
		} else if !strings.HasPrefix(out.String(), tc.prefix) {
			t.Errorf("parseFlags(%q) told the user %q; want it to begin %q", tc.args, out.String(), tc.prefix)
		}
	}
	for _, addr := range []string{":0", "127.0.0.1:4000", "[::1]:http"} {
		if _, err := parseFlags("example", []string{"-addr", addr}, io.Discard); err != nil {
			t.Errorf("-addr %s refused: %v", addr, err)
		}
	}
}

// TestMaxBytesTooSmall: the server refuses, with exit status 2, a cap that
// the session /put writes does not fit under, and names the smallest cap
// that it fits under; started with that cap it serves /put and /get. So
// the figure is that of what the server really writes, neither too large
// (the server would refuse a cap that works) nor too small.
func TestMaxBytesTooSmall(t *testing.T) {
	t.Parallel()
	bin := exampleBinary(t)
	p := launchExample(t, bin, "-addr", "127.0.0.1:0", "-max-bytes", "100")
	p.wait(t)
	log := p.log()
	if code := p.cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("-max-bytes 100 exited with status %d, want 2; log:\n%s", code, log)
	}
	_, after, ok := strings.Cut(log, "at least ")
	least, err := strconv.ParseInt(strings.Fields(after + " ")[0], 10, 64)
	if !ok || err != nil || !strings.HasPrefix(log, "-max-bytes 100: ") {
		t.Fatalf("the refusal names no smallest cap; log:\n%s", log)
	}

	if _, err := parseFlags("example", []string{"-max-bytes", fmt.Sprint(least - 1)}, io.Discard); err == nil {
		t.Fatalf("-max-bytes %d, one less than the smallest cap, accepted", least-1)
	}
	p = startExample(t, bin, "-addr", "127.0.0.1:0", "-max-bytes", fmt.Sprint(least))
	browser := newBrowser()
	fetch(t, browser, p.url("/put"))
	if got := fetch(t, browser, p.url("/get")); got != "Hello world!" {
		t.Fatalf("under -max-bytes %d, /get wrote %q, want %q; log:\n%s", least, got, "Hello world!", p.log())
	}
	p.stop(t, syscall.SIGTERM)
}

// TestStoreFailureAnswers: a request whose session the store refuses gets a
// 500 whose body says what failed, and the store's error is in the log.
func TestStoreFailureAnswers(t *testing.T) {
	t.Parallel()
	store := memstore.New(0, memstore.WithMaxBytes(100)) // no session fits
	defer store.Close()
	var logged strings.Builder
	srv := httptest.NewServer(routes(newSessionManager(store, log.New(&logged, "", 0))))
	defer srv.Close()

	resp, err := newBrowser().Get(srv.URL + "/put")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "session could not be") {
		t.Fatalf("/put answered %s %q; want 500 saying the session could not be saved", resp.Status, body)
	}
	if !strings.Contains(logged.String(), "GET /put") || !strings.Contains(logged.String(), memstore.ErrTooLarge.Error()) {
		t.Fatalf("the log does not show the store's error for GET /put: %q", logged.String())
	}
}

// TestRoutes: /put then /get with one cookie jar gives "Hello world!"; a
// browser without the cookie gets nothing; /debug/vars serves JSON and
// creates no session; /logout deletes the session from the store.
func TestRoutes(t *testing.T) {
	t.Parallel()
	store := memstore.New(0)
	defer store.Close()
	sm := scs.New()
	sm.Store = store
	srv := httptest.NewServer(routes(sm))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	withJar := &http.Client{Jar: jar}
	if got := fetch(t, withJar, srv.URL+"/put"); got != "" {
		t.Fatalf("/put wrote %q, want nothing", got)
	}
	if got := fetch(t, withJar, srv.URL+"/get"); got != "Hello world!" {
		t.Fatalf("/get wrote %q, want %q", got, "Hello world!")
	}
	if got := fetch(t, &http.Client{}, srv.URL+"/get"); got != "" {
		t.Fatalf("/get without the cookie wrote %q, want nothing", got)
	}
	var vars map[string]json.RawMessage
	if err := json.Unmarshal([]byte(fetch(t, &http.Client{}, srv.URL+"/debug/vars")), &vars); err != nil {
		t.Fatalf("/debug/vars: %v", err)
	}
	if _, ok := vars["memstats"]; !ok {
		t.Fatalf("/debug/vars has no memstats: it is not expvar's handler")
	}
	if n := store.Len(); n != 1 {
		t.Fatalf("store holds %d sessions, want 1", n)
	}
	fetch(t, withJar, srv.URL+"/logout")
	if n := store.Len(); n != 0 {
		t.Fatalf("after /logout the store holds %d sessions, want 0", n)
	}
	if got := fetch(t, withJar, srv.URL+"/get"); got != "" {
		t.Fatalf("/get after /logout wrote %q, want nothing", got)
	}
}

// pausingStore is the store with one Find held up: the next Find of token
// says so on loaded once it has read the session, and returns once release
// is closed, so that a request can be kept in flight between loading its
// session and committing it.
type pausingStore struct {
	*memstore.MemStore
	token   string
	paused  atomic.Bool
	loaded  chan struct{}
	release chan struct{}
}

func (s *pausingStore) Find(token string) ([]byte, bool, error) {
	b, found, err := s.MemStore.Find(token)
	if token == s.token && s.paused.CompareAndSwap(false, true) {
		close(s.loaded)
		<-s.release
	}
	return b, found, err
}

// FindCtx is Find for scs, which calls the Ctx methods of a store that has
// them.
func (s *pausingStore) FindCtx(_ context.Context, token string) ([]byte, bool, error) {
	return s.Find(token)
}

// TestPutDuringLogoutIsRefused: a /put that loaded the session before a
// /logout (in another tab) and commits it after gets 401 and no cookie, and
// the session stays gone.
func TestPutDuringLogoutIsRefused(t *testing.T) {
	t.Parallel()
	store := &pausingStore{MemStore: memstore.New(0), loaded: make(chan struct{}), release: make(chan struct{})}
	defer store.Close()
	sm := newSessionManager(store.MemStore, log.New(io.Discard, "", 0))
	sm.Store = store
	srv := httptest.NewServer(routes(sm))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	tab := &http.Client{Jar: jar}
	fetch(t, tab, srv.URL+"/put")
	u, _ := url.Parse(srv.URL)
	cookies := jar.Cookies(u)
	if len(cookies) != 1 {
		t.Fatalf("/put set cookies %v; want the session's", cookies)
	}
	store.token = cookies[0].Value

	slow := make(chan *http.Response, 1)
	go func() {
		resp, err := tab.Get(srv.URL + "/put")
		if err != nil {
			t.Error(err)
		} else {
			resp.Body.Close()
		}
		slow <- resp
	}()
	<-store.loaded
	fetch(t, tab, srv.URL+"/logout")
	close(store.release)
	resp := <-slow
	if resp == nil {
		t.FailNow()
	}
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) > 0 {
		t.Errorf("/put ending after /logout: %s, cookies %v; want 401 and no cookie", resp.Status, resp.Cookies())
	}
	if _, found, _ := store.MemStore.Find(store.token); found {
		t.Errorf("the session /logout deleted is back")
	}
	if got := fetch(t, tab, srv.URL+"/get"); got != "" {
		t.Errorf("/get after /logout wrote %q, want nothing", got)
	}
}

// fetch GETs url with c and returns the body, failing t on any error or a
// status other than 200.
func fetch(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(body)
}

// newBrowser returns a client with a cookie jar of its own, like one user's
// browser. It keeps no idle connections, which would hold a server's
// shutdown up.
func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:       jar,
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
}

// TestProcess runs the example as a real process on a free loopback port,
// drives /put and /get with a cookie jar, then sends a signal and checks that
// the process shuts down and exits with status 0.
func TestProcess(t *testing.T) {
	t.Parallel()
	bin := exampleBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p := startExample(t, bin, "-addr", "127.0.0.1:0", "-cleanup", "50ms")

			browser := newBrowser()
			fetch(t, browser, p.url("/put"))
			if got := fetch(t, browser, p.url("/get")); got != "Hello world!" {
				t.Fatalf("/get wrote %q, want %q", got, "Hello world!")
			}
			if got := fetch(t, newBrowser(), p.url("/get")); got != "" {
				t.Fatalf("/get without the cookie wrote %q, want nothing", got)
			}

			p.stop(t, sig)
			if log := p.log(); !strings.Contains(log, "shutting down") || !strings.Contains(log, "stopped") {
				t.Fatalf("log does not show a graceful shutdown:\n%s", log)
			}
		})
	}
}

// TestProcessSnapshotRestart: with -snapshot, a user who logged in before a
// restart (put, SIGTERM, start again) is still logged in after it.
func TestProcessSnapshotRestart(t *testing.T) {
	t.Parallel()
	bin := exampleBinary(t)
	snap := filepath.Join(t.TempDir(), "sessions.snap")
	browser := newBrowser()

	p := startExample(t, bin, "-addr", "127.0.0.1:0", "-snapshot", snap)
	fetch(t, browser, p.url("/put"))
	p.stop(t, syscall.SIGTERM)

	p = startExample(t, bin, "-addr", "127.0.0.1:0", "-snapshot", snap)
	if !strings.Contains(p.log(), "restored 1 sessions") {
		t.Errorf("log does not report the restored session:\n%s", p.log())
	}
	if got := fetch(t, browser, p.url("/get")); got != "Hello world!" {
		t.Fatalf("after the restart /get wrote %q, want %q; log:\n%s", got, "Hello world!", p.log())
	}
	p.stop(t, syscall.SIGTERM)
}

// TestProcessBadSnapshot: a -snapshot file that is there but cannot be
// restored, or a path that cannot be written, makes the server refuse to
// start, with a message that names the file, and leaves the file as it was.
// With -snapshot-ignore-bad it starts with no sessions, and its shutdown
// replaces the bad file with a good one.
func TestProcessBadSnapshot(t *testing.T) {
	t.Parallel()
	bin := exampleBinary(t)

	// A valid snapshot holding one session, to be cut short.
	good := memstore.New(0)
	defer good.Close()
	good.Commit("a-token", []byte("some data"), time.Now().Add(time.Hour))
	goodFile := filepath.Join(t.TempDir(), "good.snap")
	if err := good.WriteFile(goodFile); err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(goodFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		setUp func(snap string) error // makes snap bad
	}{
		{"not a snapshot", func(snap string) error {
			return os.WriteFile(snap, []byte("user=alice; role=admin\n"), 0o600)
		}},
		{"truncated", func(snap string) error {
			return os.WriteFile(snap, valid[:len(valid)-1], 0o600)
		}},
		{"a directory", func(snap string) error { return os.Mkdir(snap, 0o700) }},
		{"in a missing directory", func(snap string) error { return os.Remove(filepath.Dir(snap)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := filepath.Join(t.TempDir(), "sub", "sessions.snap")
			if err := os.Mkdir(filepath.Dir(snap), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.setUp(snap); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(snap) // nil for a directory or a missing file

			refuseToStart(t, bin, snap, "-addr", "127.0.0.1:0", "-snapshot", snap)
			if after, _ := os.ReadFile(snap); string(after) != string(before) {
				t.Fatalf("the refusal changed the file")
			}
		})
	}

	// -snapshot-ignore-bad ignores what the file holds, never a path the
	// shutdown could not save the sessions to.
	for _, tc := range []struct {
		name  string
		setUp func(snap string) error
	}{
		{"a directory, ignored", func(snap string) error { return os.Mkdir(snap, 0o700) }},
		{"a link, ignored", func(snap string) error { return os.Symlink(goodFile, snap) }},
		{"in a missing directory, ignored", func(snap string) error { return os.Remove(filepath.Dir(snap)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := filepath.Join(t.TempDir(), "sub", "sessions.snap")
			if err := os.Mkdir(filepath.Dir(snap), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.setUp(snap); err != nil {
				t.Fatal(err)
			}
			refuseToStart(t, bin, "-snapshot "+snap, "-addr", "127.0.0.1:0", "-snapshot", snap, "-snapshot-ignore-bad")
			if left, _ := filepath.Glob(snap + ".*.tmp"); len(left) > 0 {
				t.Fatalf("the check of the path left %s behind", left)
			}
		})
	}

	t.Run("ignored", func(t *testing.T) {
		t.Parallel()
		snap := filepath.Join(t.TempDir(), "sessions.snap")
		if err := os.WriteFile(snap, []byte("user=alice; role=admin\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startExample(t, bin, "-addr", "127.0.0.1:0", "-snapshot", snap, "-snapshot-ignore-bad")
		if log := p.log(); !strings.Contains(log, "warning") || !strings.Contains(log, snap) {
			t.Errorf("no warning naming %s in the log:\n%s", snap, log)
		}
		browser := newBrowser()
		fetch(t, browser, p.url("/put"))
		if got := fetch(t, browser, p.url("/get")); got != "Hello world!" {
			t.Fatalf("/get wrote %q, want %q", got, "Hello world!")
		}
		p.stop(t, syscall.SIGTERM)

		restored := memstore.New(0)
		defer restored.Close()
		if err := restored.ReadFile(snap); err != nil {
			t.Fatalf("the shutdown did not replace the bad file with a good snapshot: %v", err)
		}
		if n := restored.Len(); n != 1 {
			t.Fatalf("the new snapshot holds %d sessions, want 1", n)
		}
	})
}

// refuseToStart starts bin with args and fails t unless it exits with a
// non-zero status, without listening, saying that it refuses to start
// because of path (or whatever else the log must say).
func refuseToStart(t *testing.T, bin, path string, args ...string) {
	t.Helper()
	p := launchExample(t, bin, args...)
	select {
	case <-p.exited:
	case <-p.listening:
		t.Fatalf("started instead of refusing to; log:\n%s", p.log())
	case <-time.After(processTimeout):
		t.Fatalf("neither exited nor listened within %v; log:\n%s", processTimeout, p.log())
	}
	log := p.log()
	if code := p.cmd.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("exited with status 0, want a refusal; log:\n%s", log)
	}
	if !strings.Contains(log, "refusing to start") || !strings.Contains(log, path) {
		t.Fatalf("the message does not say it refuses to start because of %s:\n%s", path, log)
	}
}

// TestProcessDirCrash: with -dir, a user who logged in before the server was
// killed with SIGKILL is still logged in after it starts again on the same
// directory, and a user who logged out before the kill stays logged out. A
// second server on the directory while the first runs refuses to start.
//
// The kill must come once the login is on disk, which with the default sync
// interval is up to a second after /put answers. Rather than wait for it, the
// test has another user log out: /logout answers once the deletion is on
// disk, and the store's log is written in order, so the login, committed
// before it, is on disk too. Nothing depends on timing.
func TestProcessDirCrash(t *testing.T) {
	t.Parallel()
	bin := exampleBinary(t)
	dir := filepath.Join(t.TempDir(), "sessions")
	stays, leaves := newBrowser(), newBrowser()

	p := startExample(t, bin, "-addr", "127.0.0.1:0", "-dir", dir)
	refuseToStart(t, bin, dir, "-addr", "127.0.0.1:0", "-dir", dir)
	fetch(t, stays, p.url("/put"))
	fetch(t, leaves, p.url("/put"))
	leftToken := sessionToken(t, leaves, p.url("/"))
	fetch(t, leaves, p.url("/logout"))
	p.kill(t)

	p = startExample(t, bin, "-addr", "127.0.0.1:0", "-dir", dir)
	if !strings.Contains(p.log(), "restored 1 sessions") {
		t.Errorf("log does not report the one session left:\n%s", p.log())
	}
	if got := fetch(t, stays, p.url("/get")); got != "Hello world!" {
		t.Fatalf("after the kill and restart /get wrote %q, want %q; log:\n%s", got, "Hello world!", p.log())
	}
	// The browser dropped the cookie at /logout: an attacker who kept it
	// must not get the session back either.
	if got := fetch(t, withCookie(t, p.url("/"), leftToken), p.url("/get")); got != "" {
		t.Fatalf("after the kill and restart, the session logged out of is back: /get wrote %q", got)
	}
	p.stop(t, syscall.SIGTERM)
}

// withCookie returns a new browser holding a session cookie with token for
// rawURL.
func withCookie(t *testing.T, rawURL, token string) *http.Client {
	t.Helper()
	browser := newBrowser()
	browser.Jar.SetCookies(parseURL(t, rawURL), []*http.Cookie{{Name: sessionCookie, Value: token}})
	return browser
}

// TestProcessSaveFails: when the snapshot cannot be saved at shutdown, here
// because its directory was removed while the server ran, the failure is
// logged and the exit status is not 0, so that a supervisor notices.
func TestProcessSaveFails(t *testing.T) {
	t.Parallel()
	bin := exampleBinary(t)
	dir := filepath.Join(t.TempDir(), "sub")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "sessions.snap")

	p := startExample(t, bin, "-addr", "127.0.0.1:0", "-snapshot", snap)
	fetch(t, newBrowser(), p.url("/put"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	if code := p.cmd.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("exited with status 0 although the save failed; log:\n%s", p.log())
	}
	if log := p.log(); !strings.Contains(log, "saving the sessions to "+snap) {
		t.Fatalf("the log does not report the failed save:\n%s", log)
	}
}

// TestProcessKilledWhileSaving: a server killed with SIGKILL in the middle of
// writing a large snapshot leaves the previous snapshot whole, and the user
// it holds is still logged in after the next start.
//
// The kill must land while the server is inside WriteFile: after it has
// created its temporary file (FILE.*.tmp, next to FILE) and begun writing
// it, before it renames it over FILE. The test makes that window long by
// having the server restore, and so save, tens of megabytes; it polls for
// the temporary file and kills the server as soon as the file holds some
// bytes. The temporary file still being there after the server is dead proves
// the kill landed in time. If the server won the race instead (a stalled
// test process on a loaded machine, a fast disk), the attempt proves nothing
// and is made again with twice the sessions, up to hundreds of megabytes;
// after six such attempts the test fails rather than pass without having
// shown anything. The first attempt is small, because the test process,
// built with -race, pays several times over for every byte it writes and
// reads back, and its window is still wide: even on tmpfs the kill lands
// within its first megabyte or so.
func TestProcessKilledWhileSaving(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes snapshots of tens of megabytes")
	}
	bin := exampleBinary(t)
	snap := filepath.Join(t.TempDir(), "sessions.snap")
	browser := newBrowser()

	// A first run leaves a snapshot holding the user's session.
	p := startExample(t, bin, "-addr", "127.0.0.1:0", "-snapshot", snap)
	fetch(t, browser, p.url("/put"))
	token := sessionToken(t, browser, p.url("/"))
	p.stop(t, syscall.SIGTERM)

	const attempts = 6 // up to 1<<21 sessions, about a gigabyte
	for attempt, more := 1, 1<<16; ; attempt, more = attempt+1, 2*more {
		missed := killWhileSaving(t, bin, snap, more)
		if missed == "" {
			break
		}
		if attempt == attempts {
			t.Fatalf("%d attempts failed to kill the server while it saved; the last, with %d more sessions: %s", attempts, more, missed)
		}
		t.Logf("attempt %d, with %d more sessions, is inconclusive: %s", attempt, more, missed)
	}

	restored := memstore.New(0)
	defer restored.Close()
	if err := restored.ReadFile(snap); err != nil {
		t.Fatalf("the previous snapshot does not restore: %v", err)
	}
	if _, found, _ := restored.Find(token); !found {
		t.Fatalf("the previous snapshot has lost the user's session")
	}
	p = startExample(t, bin, "-addr", "127.0.0.1:0", "-snapshot", snap)
	if got := fetch(t, browser, p.url("/get")); got != "Hello world!" {
		t.Fatalf("after the restart /get wrote %q, want %q; log:\n%s", got, "Hello world!", p.log())
	}
	// The cleanup kills this server: a graceful stop would only save again.
}

// killWhileSaving adds more sessions to the snapshot in snap, starts the
// server on it, sends SIGTERM and kills the server while it saves. If the
// kill landed before the save was done, it fails t unless snap is still the
// very file it was before, and returns "". Otherwise it returns what happened
// instead.
func killWhileSaving(t *testing.T, bin, snap string, more int) (missed string) {
	t.Helper()
	// Grow the snapshot: what snap holds (the user's session among it) and
	// enough others to make the save slow. Their data is opaque to the
	// server: it never decodes a session that no request asks for.
	large := memstore.New(0)
	if err := large.ReadFile(snap); err != nil {
		t.Fatal(err)
	}
	data, expiry := make([]byte, 512), time.Now().Add(time.Hour)
	for i := range more {
		large.Commit(fmt.Sprintf("filler-%036d", i), data, expiry) // 43 bytes, as scs's tokens
	}
	if err := large.WriteFile(snap); err != nil {
		t.Fatal(err)
	}
	large.Close()
	before, err := os.Stat(snap)
	if err != nil {
		t.Fatal(err)
	}

	p := startExample(t, bin, "-addr", "127.0.0.1:0", "-snapshot", snap)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	tmpFiles := snap + ".*.tmp"
	deadline := time.Now().Add(processTimeout)
	for !hasBytes(tmpFiles) {
		select {
		case <-p.exited: // the save was done before the poll saw it begin
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exited with status %d; log:\n%s", code, p.log())
			}
			return "the server exited before a temporary file with data in it was seen"
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no temporary file %s within %v of SIGTERM; log:\n%s", tmpFiles, processTimeout, p.log())
		}
	}
	p.cmd.Process.Kill()
	p.wait(t)

	left, _ := filepath.Glob(tmpFiles)
	if status := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !status.Signaled() || len(left) == 0 {
		return "the server finished saving before the kill landed"
	}
	if info, err := os.Stat(left[0]); err == nil {
		t.Logf("killed with %d bytes of about %d written to %s", info.Size(), before.Size(), left[0])
	}
	after, err := os.Stat(snap)
	if err != nil {
		t.Fatalf("the snapshot is gone after the kill: %v", err)
	}
	if !os.SameFile(before, after) || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the kill left a snapshot that is not the previous one, untouched")
	}
	return ""
}

// hasBytes reports whether a file matching pattern exists and is not empty.
func hasBytes(pattern string) bool {
	names, _ := filepath.Glob(pattern)
	for _, name := range names {
		if info, err := os.Stat(name); err == nil && info.Size() > 0 {
			return true
		}
	}
	return false
}

// sessionToken returns the session token in browser's cookie jar for rawURL.
func sessionToken(t *testing.T, browser *http.Client, rawURL string) string {
	t.Helper()
	for _, c := range browser.Jar.Cookies(parseURL(t, rawURL)) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	t.Fatalf("no %q cookie in the jar for %s", sessionCookie, rawURL)
	return ""
}

// sessionCookie is the name of scs's session cookie, which the example
// leaves at its default.
var sessionCookie = scs.New().Cookie.Name

// parseURL parses rawURL, failing t if it cannot.
func parseURL(t *testing.T, rawURL string) *url.URL {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestProcessExpvar scrapes /debug/vars from the running process, started
// with -max-bytes: the memstore variable counts the sessions created, shows
// the cap, and under a flood of new sessions stays within the cap by
// evicting.
func TestProcessExpvar(t *testing.T) {
	t.Parallel()
	bin := exampleBinary(t)
	const maxBytes = 100_000
	p := startExample(t, bin, "-addr", "127.0.0.1:0", "-max-bytes", fmt.Sprint(maxBytes))

	putNew := func(n int) { // n users, each with a new session
		for range n {
			fetch(t, newBrowser(), p.url("/put"))
		}
	}
	const users = 10
	putNew(users)
	stats := scrape(t, p.url("/debug/vars"))
	if stats.Sessions != users || stats.MaxBytes != maxBytes || stats.Bytes <= 0 || stats.Bytes > maxBytes || stats.Evicted != 0 {
		t.Fatalf("after %d users, memstore is %+v; want %d sessions, none evicted, MaxBytes %d and Bytes within it",
			users, stats, users, maxBytes)
	}

	// Twice as many sessions as the cap holds.
	flood := int(2 * maxBytes / (stats.Bytes / users))
	putNew(flood)
	stats = scrape(t, p.url("/debug/vars"))
	if stats.Bytes > maxBytes || stats.Evicted == 0 || stats.Sessions+int(stats.Evicted) != users+flood {
		t.Fatalf("after %d more users, memstore is %+v; want Bytes within MaxBytes %d, and Sessions + Evicted = %d",
			flood, stats, maxBytes, users+flood)
	}
	p.stop(t, syscall.SIGTERM)
}

// scrape GETs the expvar page at url and returns its memstore variable.
func scrape(t *testing.T, url string) memstore.Stats {
	t.Helper()
	var vars struct {
		Memstore *memstore.Stats `json:"memstore"`
	}
	if err := json.Unmarshal([]byte(fetch(t, newBrowser(), url)), &vars); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	if vars.Memstore == nil {
		t.Fatalf("%s has no memstore variable", url)
	}
	return *vars.Memstore
}

// processTimeout bounds how long a test waits for the example to start or to
// exit: restoring or saving a large snapshot on a loaded machine takes a
// while. Only a hung process should ever reach it.
const processTimeout = 2 * time.Minute

// The example binary, built once for all the tests that run it (see
// exampleBinary) in a directory that TestMain removes.
var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// exampleBinary returns the example built with go build, building it on the
// first call. It skips t where there is no go tool, or no Unix to signal
// processes.
func exampleBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("sending SIGTERM and SIGINT to a process needs a Unix")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build the example with: %v", err)
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "example-test-"); buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "example")
		if out, err := exec.Command(goTool, "build", "-o", binary, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// process is a running example server.
type process struct {
	cmd       *exec.Cmd
	addr      string        // host:port it listens on, once startExample has returned
	listening chan string   // receives the address it logs it listens on
	exited    chan struct{} // closed once cmd.Wait has returned

	mu     sync.Mutex
	stderr strings.Builder // everything it has logged so far
}

// log returns what the process has written to stderr so far.
func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// url returns the URL of path on the process.
func (p *process) url(path string) string {
	return "http://" + p.addr + path
}

// startExample starts bin with args and waits until it logs the address it
// listens on. The process is killed when the test ends if still running.
func startExample(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := launchExample(t, bin, args...)
	select {
	case p.addr = <-p.listening:
	case <-p.exited:
		t.Fatalf("exited before listening; log:\n%s", p.log())
	case <-time.After(processTimeout):
		t.Fatalf("did not log its address within %v; log:\n%s", processTimeout, p.log())
	}
	return p
}

// launchExample starts bin with args, without waiting for anything. The
// process is killed when the test ends if still running.
func launchExample(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{
		cmd:       exec.Command(bin, args...),
		listening: make(chan string, 1),
		exited:    make(chan struct{}),
	}
	p.cmd.Stdout = os.Stderr
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}

	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if _, addr, ok := strings.Cut(line, "listening on "); ok {
				select {
				case p.listening <- addr:
				default:
				}
			}
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// wait waits until the process has exited. If it is still running after
// processTimeout, wait kills it and fails t.
func (p *process) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(processTimeout):
		p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("still running after %v; log:\n%s", processTimeout, p.log())
	}
}

// kill kills the process with SIGKILL, as a crash or an OOM kill would, waits
// until it has exited and fails t unless the signal ended it.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	if status := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !status.Signaled() || status.Signal() != syscall.SIGKILL {
		t.Fatalf("exited with %v, want killed by SIGKILL; log:\n%s", p.cmd.ProcessState, p.log())
	}
}

// stop sends sig to the process, waits until it has exited and fails t
// unless its exit status is 0.
func (p *process) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exited with status %d after %v, want 0; log:\n%s", code, sig, p.log())
	}
}
