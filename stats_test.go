// SPDX-License-Identifier: MIT

package memstore

import (
	"encoding/json"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStatsJSON: a Stats encodes LastDiskError as the error's text, which
// an operator reads on /debug/vars to learn why DiskErrors grows, where
// encoding/json alone writes {}; none is null; every other field encodes as
// encoding/json writes it, and decoding gives the same Stats back.
func TestStatsJSON(t *testing.T) {
	t.Parallel()
	diskErr := &fs.PathError{Op: "write", Path: "/var/lib/sessions/log.0000000000000002", Err: syscall.ENOSPC}
	st := Stats{
		Sessions: 3, Bytes: 70000, MaxBytes: 1 << 20, Expired: 4, Evicted: 5,
		Compactions: 6, Sweeps: 7, LastSweep: 8 * time.Millisecond, LastSweepLongestHold: 9 * time.Microsecond,
		Syncs: 10, Rewrites: 11, DiskErrors: 12, LastDiskError: diskErr,
		LastDiskErrorAt: time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC), TornRecords: 13,
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if got := fields["LastDiskError"]; got != diskErr.Error() {
		t.Fatalf("LastDiskError encodes as %#v in %s; want its text %q", got, b, diskErr.Error())
	}
	plain := st
	plain.LastDiskError = nil
	pb, err := json.Marshal(statsFields(plain)) // encoding/json's own encoding, {} for an error
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(pb, &want); err != nil {
		t.Fatal(err)
	}
	want["LastDiskError"] = diskErr.Error()
	if !reflect.DeepEqual(fields, want) || fields["LastDiskErrorAt"] != "2026-12-05T09:30:00Z" {
		t.Fatalf("encoded %s; want the fields of %s, LastDiskError as its text", b, pb)
	}
	if pb, err := json.Marshal(&st); err != nil || string(pb) != string(b) {
		t.Fatalf("a *Stats encodes as %s, %v; want %s", pb, err, b)
	}

	var back Stats
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.LastDiskError == nil || back.LastDiskError.Error() != diskErr.Error() {
		t.Fatalf("LastDiskError decodes as %v; want an error with the text %q", back.LastDiskError, diskErr.Error())
	}
	back.LastDiskError, st.LastDiskError = nil, nil
	if back != st {
		t.Fatalf("decoded %+v; want %+v", back, st)
	}

	b, err = json.Marshal(Stats{Sessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"LastDiskError":null`) || !strings.Contains(string(b), `"Sessions":1`) {
		t.Fatalf("encoded %s; want LastDiskError null for none", b)
	}
	back = Stats{LastDiskError: diskErr}
	if err := json.Unmarshal(b, &back); err != nil || back != (Stats{Sessions: 1}) {
		t.Fatalf("decoded %+v, %v; want %+v", back, err, Stats{Sessions: 1})
	}
}
