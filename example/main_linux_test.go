// SPDX-License-Identifier: MIT

package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestProcessExpvarDiskError: with -dir on a disk that is full, a logout
// fails, and /debug/vars then shows the disk error as the system's words
// naming the file, which the operator reads to learn why DiskErrors grew,
// where encoding/json alone would show {}.
//
// /logout answers once its deletion is on disk, or has failed to be: once
// it has answered 500 the error is in Stats, with no waiting on the clock.
// The logins made after the disk is full come first in the log, and are
// more than the room left in the page the log file ends in, which a full
// tmpfs still takes writes into.
func TestProcessExpvarDiskError(t *testing.T) {
	t.Parallel()
	bin := exampleBinary(t)
	dir := t.TempDir()
	// A tmpfs small enough to fill at once, and one the test may unmount.
	err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=1m,mode=0700")
	if err != nil {
		t.Skipf("cannot mount a tmpfs to fill (this test needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})

	p := startExample(t, bin, "-addr", "127.0.0.1:0", "-dir", dir+"/sessions")
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited }) // before the unmount
	if st := scrape(t, p.url("/debug/vars")); st.DiskErrors != 0 || st.LastDiskError != nil {
		t.Fatalf("before the disk is full, memstore is %+v; want no disk error", st)
	}
	browser := newBrowser()
	fetch(t, browser, p.url("/put"))
	fillDisk(t, dir)
	for range 64 { // about 10 KiB of log records
		fetch(t, newBrowser(), p.url("/put"))
	}

	resp, err := browser.Get(p.url("/logout"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("/logout on a full disk answered %s, want 500", resp.Status)
	}
	st := scrape(t, p.url("/debug/vars"))
	if st.DiskErrors == 0 || st.LastDiskError == nil || !strings.Contains(st.LastDiskError.Error(), "no space left on device") ||
		!strings.Contains(st.LastDiskError.Error(), dir) || st.LastDiskErrorAt.IsZero() {
		t.Fatalf("after a failed logout, memstore is %+v; want the disk error's text, naming a file in %s, and its time", st, dir)
	}
}

// fillDisk writes a file in dir until its file system has no byte left.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for size := 64 << 10; size > 0; size /= 2 { // ever smaller, to fill the last page too
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); errors.Is(err, syscall.ENOSPC) {
				break
			} else if err != nil {
				t.Fatal(fmt.Errorf("filling %s: %w", dir, err))
			}
		}
	}
}
