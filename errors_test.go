// SPDX-License-Identifier: MIT

package memstore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/golangcollege/memstore"
)

// damageRef is what the error of a damaged file of a store's directory
// points to: the section that says how to recover.
const damageRef = "docs/durability.md#damage"

// damagedAt returns the offset the error of Open gives for a damaged file
// of kind ("log file", "base file") at path, failing t unless the error
// wraps ErrBadSnapshot and names the kind, the path, an offset and the
// section on damage.
func damagedAt(t *testing.T, err error, kind, path string) int64 {
	t.Helper()
	if !errors.Is(err, memstore.ErrBadSnapshot) {
		t.Fatalf("Open: %v; want an error wrapping ErrBadSnapshot", err)
	}
	m := regexp.MustCompile(`damaged ` + kind + ` (.*) at offset (\d+): `).FindStringSubmatch(err.Error())
	if m == nil || m[1] != path || !strings.Contains(err.Error(), damageRef) {
		t.Fatalf("Open: %v; want it to say \"damaged %s %s at offset N\" and point to %s", err, kind, path, damageRef)
	}
	off, _ := strconv.ParseInt(m[2], 10, 64)
	return off
}

// TestDamagedLogNamesItsOffset: a bad record in the midst of a log makes
// Open fail with an error that says it is a damaged log, names it, and gives
// the offset of the bad record, which is where docs/durability.md#damage
// says to cut the log: cut there, the log opens, with every record before.
func TestDamagedLogNamesItsOffset(t *testing.T) {
	t.Parallel()
	dir, _ := committedLog(t, 3) // three records of the same size
	log := logs(t, dir)[0]
	whole := readAll(t, log)
	const firstRecord = 25 // after the log's magic number, version and store
	record := (len(whole) - firstRecord) / 3
	damaged := append([]byte(nil), whole...)
	damaged[firstRecord+record+record/2] ^= 1 // in the second record's payload
	if err := os.WriteFile(log, damaged, 0o600); err != nil {
		t.Fatal(err)
	}

	m, err := memstore.Open(dir, 0)
	if err == nil {
		m.Close()
		t.Fatal("Open of a damaged log succeeded")
	}
	off := damagedAt(t, err, "log file", log)
	t.Log(err)
	if want := int64(firstRecord + record); off != want {
		t.Fatalf("Open: %v; want the offset of the second record, %d", err, want)
	}
	if !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("Open: %v; want it to say what is wrong: a checksum mismatch", err)
	}

	if err := os.Truncate(log, off); err != nil {
		t.Fatal(err)
	}
	m, err = memstore.Open(dir, 0)
	if err != nil {
		t.Fatalf("Open after cutting the log at offset %d: %v", off, err)
	}
	defer m.Close()
	if _, found, _ := m.Find("t0"); !found || m.Len() != 1 {
		t.Fatalf("after cutting the log at offset %d the store holds %d sessions, t0 found %v; want t0 alone", off, m.Len(), found)
	}
}

// TestDamagedBaseNamesItsOffset: a bad entry in a base makes Open fail with
// an error that says it is a damaged base, names it, gives the offset of the
// entry and points to the section on damage; the same bytes given to
// ReadFile are a bad snapshot, as they are outside a store's directory.
func TestDamagedBaseNamesItsOffset(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m := openStore(t, dir)
	for i := range 3 { // entries of the same size: a one-byte length, 2, 8, one, 10
		mustCommit(t, m, fmt.Sprint("t", i), []byte(fmt.Sprint("data of t", i)), inAnHour())
	}
	m = reopen(t, m, dir) // its Close rewrote the base
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	bases, _ := filepath.Glob(filepath.Join(dir, "base.*"))
	if len(bases) != 1 {
		t.Fatalf("%s holds bases %q; want one", dir, bases)
	}
	base := bases[0]
	whole := readAll(t, base)
	const entry, checksum = 1 + 2 + 8 + 1 + 10, 4
	second := len(whole) - checksum - 2*entry
	damaged := append([]byte(nil), whole...)
	damaged[second+1+2+8] = 0x7f // the data's length: more than the file has left
	if err := os.WriteFile(base, damaged, 0o600); err != nil {
		t.Fatal(err)
	}

	m, err := memstore.Open(dir, 0)
	if err == nil {
		m.Close()
		t.Fatal("Open of a damaged base succeeded")
	}
	t.Log(err)
	if off := damagedAt(t, err, "base file", base); off != int64(second) {
		t.Fatalf("Open: %v; want the offset of the second entry, %d", err, second)
	}
	if !strings.Contains(err.Error(), "impossible data length") || !strings.Contains(err.Error(), "entry 2 of 3") {
		t.Errorf("Open: %v; want it to say what is wrong: an impossible data length in entry 2 of 3", err)
	}

	plain := memstore.New(0)
	defer plain.Close()
	err = plain.ReadFile(base)
	if !errors.Is(err, memstore.ErrBadSnapshot) || !strings.HasPrefix(err.Error(), base+": memstore: bad snapshot: impossible data length") {
		t.Fatalf("ReadFile of the damaged base: %v; want %s: and a bad snapshot's error", err, base)
	}
}
