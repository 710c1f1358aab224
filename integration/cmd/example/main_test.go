// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/golangcollege/memstore"
)

// TestParseFlags: the defaults are the README's, the flags set what they
// name, and bad input is refused.
func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags("example", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != ":4000" || cfg.cleanup != time.Minute {
		t.Fatalf("defaults are %+v, want -addr :4000 -cleanup 1m", cfg)
	}

	cfg, err = parseFlags("example", []string{"-addr", "127.0.0.1:0", "-cleanup", "250ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "127.0.0.1:0" || cfg.cleanup != 250*time.Millisecond {
		t.Fatalf("parsed %+v, want -addr 127.0.0.1:0 -cleanup 250ms", cfg)
	}

	for _, args := range [][]string{
		{"-cleanup", "often"},
		{"-cleanup", "-1s"},
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
}

// TestRoutes: /put then /get with one cookie jar gives "Hello world!"; a
// browser without the cookie gets nothing.
func TestRoutes(t *testing.T) {
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
	if n := store.Len(); n != 1 {
		t.Fatalf("store holds %d sessions, want 1", n)
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

// TestProcess builds the example with go build, runs it as a real process on
// a free loopback port, drives /put and /get with a cookie jar, then sends a
// signal and checks that the process shuts down and exits with status 0.
func TestProcess(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("sending SIGTERM and SIGINT to a process needs a Unix")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build the example with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "example")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startExample(t, bin, "-addr", "127.0.0.1:0", "-cleanup", "50ms")

			jar, _ := cookiejar.New(nil)
			client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
			fetch(t, client, "http://"+p.addr+"/put")
			if got := fetch(t, client, "http://"+p.addr+"/get"); got != "Hello world!" {
				t.Fatalf("/get wrote %q, want %q", got, "Hello world!")
			}
			if got := fetch(t, &http.Client{Timeout: 30 * time.Second}, "http://"+p.addr+"/get"); got != "" {
				t.Fatalf("/get without the cookie wrote %q, want nothing", got)
			}
			client.CloseIdleConnections()

			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				p.cmd.Process.Kill()
				<-p.exited
				t.Fatalf("still running 30s after %v; log:\n%s", sig, p.log())
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exited with status %d after %v, want 0; log:\n%s", code, sig, p.log())
			}
			if log := p.log(); !strings.Contains(log, "shutting down") || !strings.Contains(log, "stopped") {
				t.Fatalf("log does not show a graceful shutdown:\n%s", log)
			}
		})
	}
}

// process is a running example server.
type process struct {
	cmd    *exec.Cmd
	addr   string        // host:port it listens on
	exited chan struct{} // closed once cmd.Wait has returned

	mu     sync.Mutex
	stderr strings.Builder // everything it has logged so far
}

// log returns what the process has written to stderr so far.
func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startExample starts bin with args and waits until it logs the address it
// listens on. The process is killed when the test ends if still running.
func startExample(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Stdout = os.Stderr
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}

	addrc := make(chan string, 1)
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
				case addrc <- addr:
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

	select {
	case p.addr = <-addrc:
	case <-p.exited:
		t.Fatalf("exited before listening; log:\n%s", p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("did not log its address within 30s; log:\n%s", p.log())
	}
	return p
}
