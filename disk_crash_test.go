// SPDX-License-Identifier: MIT

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// The crash test: a child process, this test binary run again, opens a
// store in a directory and commits and deletes from many goroutines as fast
// as it can, writing a line to its stdout for each call that returned; the
// parent kills it with SIGKILL at a random moment, reopens the directory,
// and checks what it restores against the calls acknowledged. The same
// directory goes through every kill of a plan, so that each child starts
// from what the previous crash left, restored, and continues the same
// tokens.
//
// Every token belongs to one writer goroutine of the child, so the calls on
// a token are serial and the parent knows their order. The n-th call of a
// round on a token has the sequence number round*crashRoundSeqs+n, and it is
// a Delete if n is a multiple of 3, else a Commit of crashData(token, seq):
// the data names its token and sequence number, so that the parent tells
// which call, if any, wrote a session it finds.

// Environment of the child, TestChildCrashing.
const (
	crashDirEnv      = "MEMSTORE_CRASH_DIR"      // the directory to open; unset in the parent
	crashIntervalEnv = "MEMSTORE_CRASH_INTERVAL" // the sync interval, as time.ParseDuration reads it
	crashRoundEnv    = "MEMSTORE_CRASH_ROUND"    // the round: which sequence numbers to use
)

const (
	crashWriters         = 32 // writer goroutines in the child
	crashTokensPerWriter = 2
	crashTokens          = crashWriters * crashTokensPerWriter

	// crashRoundSeqs spaces the sequence numbers of rounds apart: no child
	// makes a billion calls on one token before it is killed.
	crashRoundSeqs = 1_000_000_000

	// crashRewriteSlack is small, so that the logs pass twice the live
	// sessions' size plus this within milliseconds of a rewrite: the
	// children rewrite every few milliseconds, and about half the kills
	// land during a rewrite.
	crashRewriteSlack = 1 << 10

	// crashMargin is how much longer than the sync interval the parent
	// allows a Commit to reach the disk: a loaded machine may delay the
	// child's writer goroutine that long, and the parent's reading of the
	// child's lines too.
	crashMargin = time.Second

	// crashExpiry is the sessions' lifetime: none expires during the test.
	crashExpiry = time.Hour
)

// crashToken returns the token numbered i.
func crashToken(i int) string { return fmt.Sprintf("crash-token-%03d", i) }

// crashIsDelete reports whether the n-th call of a round on a token, n >= 1,
// is a Delete.
func crashIsDelete(n uint64) bool { return n%3 == 0 }

// crashData returns the data the Commit of token with sequence number seq
// writes: the token, the number, and 32 to 160 bytes of padding, so that
// sessions differ in size.
func crashData(token string, seq uint64) []byte {
	b := fmt.Appendf(nil, "%s %d ", token, seq)
	return append(b, bytes.Repeat([]byte{byte('a' + seq%26)}, 32+int(seq%129))...)
}

// crashSeqOf returns the sequence number that data, found under token,
// names, if it is exactly what crashData wrote.
func crashSeqOf(token string, data []byte) (uint64, bool) {
	name, rest, _ := strings.Cut(string(data), " ")
	num, _, _ := strings.Cut(rest, " ")
	seq, err := strconv.ParseUint(num, 10, 64)
	return seq, name == token && err == nil && bytes.Equal(data, crashData(token, seq))
}

// TestChildCrashing is the child of TestCrash: it opens the store in
// $MEMSTORE_CRASH_DIR and makes the calls of one round, writing "ready" to
// its stdout once the store is open, then "C token-number seq" for each
// Commit and "D token-number seq" for each Delete that returned, until it is
// killed. It runs only as a child process of TestCrash.
func TestChildCrashing(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as a child process of TestCrash")
	}
	exitWithParent()
	interval, err := time.ParseDuration(os.Getenv(crashIntervalEnv))
	if err != nil {
		t.Fatal(err)
	}
	round, err := strconv.ParseUint(os.Getenv(crashRoundEnv), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// The writers reuse their tokens; the parent reopens the directory
	// without this option, so the logs' deletes and re-commits replay as
	// they were made.
	m, err := memstore.Open(dir, 0, memstore.WithSyncInterval(interval), memstore.WithRewriteSlack(crashRewriteSlack), memstore.WithReusableDeletedTokens())
	if err != nil {
		t.Fatal(err)
	}
	// os.Stdout is unbuffered: each line is one write, which reaches the
	// parent however the child ends, and lines of up to PIPE_BUF bytes
	// written to a pipe at once never interleave.
	fmt.Println("ready")
	for w := range crashWriters {
		go func() {
			calls := make([]uint64, crashTokensPerWriter)
			for {
				k := rand.IntN(crashTokensPerWriter)
				calls[k]++
				i, n := w*crashTokensPerWriter+k, calls[k]
				token, seq := crashToken(i), round*crashRoundSeqs+n
				var err error
				op := 'C'
				if crashIsDelete(n) {
					op, err = 'D', m.Delete(token)
				} else {
					err = m.Commit(token, crashData(token, seq), time.Now().Add(crashExpiry))
				}
				if err != nil {
					fmt.Printf("error: %c %s %d: %v\n", op, token, seq, err)
					return
				}
				fmt.Printf("%c %d %d\n", op, i, seq)
			}
		}()
	}
	time.Sleep(time.Minute)
	t.Error("not killed within a minute")
}

// crashAck is a call that the child reported returned.
type crashAck struct {
	seq uint64
	at  time.Time // when the parent read the line: after the call returned
}

// crashTokenRound is what the parent knows of one token in one round.
type crashTokenRound struct {
	baseline uint64 // the sequence number of the session restored at the round's start; 0 for none
	acks     []crashAck
}

// crashVerdict is what one token's check found.
type crashVerdict struct {
	seq    uint64 // the sequence number of the session found; 0 for none
	strict bool   // a Commit of the round was old enough to have to be on disk
	err    error
}

// check checks what the reopened store holds for token: data if found.
// Every Commit acknowledged at or before durableBy, and every Delete
// acknowledged, must be reflected (by the session it wrote, a newer one,
// or the absence that a later Delete, maybe the call in flight, left), and
// the session found must have been written by a Commit of this round that
// was acknowledged or in flight, or be the baseline.
func (r *crashTokenRound) check(token string, round uint64, data []byte, found bool, durableBy time.Time) crashVerdict {
	base := round * crashRoundSeqs
	last, durable, deleted := base, r.baseline, uint64(0)
	for _, a := range r.acks {
		switch {
		case crashIsDelete(a.seq - base):
			deleted = a.seq
		case !a.at.After(durableBy):
			durable = a.seq
		}
		last = a.seq
	}
	inFlight := last + 1 // the call that may have been under way at the kill
	v := crashVerdict{strict: durable > base}
	if !found {
		for s := max(durable, base) + 1; s <= inFlight; s++ {
			if crashIsDelete(s - base) {
				return v // deleted after the last durable Commit, if any
			}
		}
		if durable > 0 {
			v.err = fmt.Errorf("%s is missing; the Commit of %d must be on disk", token, durable)
		}
		return v
	}
	seq, ok := crashSeqOf(token, data)
	switch {
	case !ok:
		v.err = fmt.Errorf("%s holds %q, which no Commit wrote", token, data)
	case seq <= base && seq != r.baseline:
		v.err = fmt.Errorf("%s holds the Commit of %d from an earlier round; it held %d when restored (0: none)", token, seq, r.baseline)
	case seq > base && (seq > inFlight || crashIsDelete(seq-base)):
		v.err = fmt.Errorf("%s holds %d, which was never committed (last call acknowledged: %d)", token, seq, last)
	case seq < durable:
		v.err = fmt.Errorf("%s holds %d, older than the Commit of %d, which must be on disk", token, seq, durable)
	case seq <= deleted:
		v.err = fmt.Errorf("%s holds %d, deleted by the acknowledged Delete of %d", token, seq, deleted)
	}
	v.seq = seq
	return v
}

// crashPlan is a series of kills of children that share one directory.
type crashPlan struct {
	interval time.Duration   // the children's sync interval
	delays   []time.Duration // how long after its store is open each child is killed
}

// crashOutcome sums up one kill.
type crashOutcome struct {
	acks        int    // calls acknowledged
	strict      int    // tokens with a Commit of the round old enough to have to be on disk
	midRewrite  string // what shows that the kill landed during a rewrite; "" if nothing does
	tornRecords uint64 // as the reopened store counts them
}

// TestCrash kills children making calls as fast as they can with SIGKILL at
// random moments, 15 in all (22 under -long), and checks what reopening their directory
// restores: see crashTokenRound.check. The children rewrite every few
// milliseconds, and at least one kill must land during a rewrite. Under a sync interval of 0 every
// Commit acknowledged must be restored; under 100ms, those acknowledged
// more than a second before the kill besides, and some children run long
// enough to have some.
func TestCrash(t *testing.T) {
	t.Parallel()
	uniform := func(n int, lo, hi time.Duration) []time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = lo + rand.N(hi-lo)
		}
		return d
	}
	// The plans run in parallel, each in its own directory. The last two
	// children under 100ms live long enough for some Commits to be checked
	// strictly.
	latest := sized(250*time.Millisecond, time.Second)
	plans := map[string]crashPlan{
		"interval0": {interval: 0, delays: uniform(sized(8, 12), 50*time.Millisecond, latest)},
		"interval100ms": {interval: 100 * time.Millisecond, delays: append(
			uniform(sized(6, 8), 50*time.Millisecond, latest),
			uniform(sized(1, 2), 1300*time.Millisecond, 1600*time.Millisecond)...)},
	}
	var mu sync.Mutex
	var kills, midRewrites int
	strict := make(map[time.Duration]int) // tokens checked strictly, by sync interval
	for name, plan := range plans {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := storeDir(t)
			model := make([]crashTokenRound, crashTokens)
			for i, delay := range plan.delays {
				round := uint64(i + 1)
				o := crashRound(t, dir, plan.interval, round, delay, model)
				t.Logf("kill %d at %v: %d calls acknowledged, %d tokens checked strictly, torn records %d, mid-rewrite: %q",
					round, delay, o.acks, o.strict, o.tornRecords, o.midRewrite)
				mu.Lock()
				strict[plan.interval] += o.strict
				kills++
				if o.midRewrite != "" {
					midRewrites++
				}
				mu.Unlock()
				if t.Failed() {
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		t.Logf("%d kills, %d of them during a rewrite", kills, midRewrites)
		all := 0
		for _, plan := range plans {
			all += len(plan.delays)
		}
		if t.Failed() || kills < all {
			return // a plan failed, or -run selected some plans only
		}
		if midRewrites == 0 {
			t.Errorf("none of the %d kills landed during a rewrite", kills)
		}
		for _, plan := range plans {
			if strict[plan.interval] == 0 {
				t.Errorf("under a sync interval of %v, no Commit was old enough at a kill to be checked strictly", plan.interval)
			}
		}
	})
}

// cleanDir matches the files of a store's directory, but its LOCK, as
// storeFiles lists them, when no rewrite is under way: a log, and the base
// of its generation or an earlier one.
var cleanDir = regexp.MustCompile(`^(base\.[0-9a-f]{16} )?log\.[0-9a-f]{16}$`)

// crashRound runs one child on dir, kills it delay after its store is open,
// reopens dir and checks it against model, which it updates for the next
// round.
func crashRound(t *testing.T, dir string, interval time.Duration, round uint64, delay time.Duration, model []crashTokenRound) crashOutcome {
	t.Helper()
	for i := range model {
		model[i].acks = model[i].acks[:0]
	}
	var o crashOutcome
	var unexpected []string
	ready := make(chan struct{})
	before := dirNames(t, dir)
	child := startChild(t, "^TestChildCrashing$", []string{
		crashDirEnv + "=" + dir,
		crashIntervalEnv + "=" + interval.String(),
		crashRoundEnv + "=" + strconv.FormatUint(round, 10),
	}, func(line string, at time.Time) {
		if line == "ready" {
			close(ready)
			return
		}
		if err := crashRecord(model, round, line, at); err != nil {
			unexpected = append(unexpected, err.Error())
			return
		}
		o.acks++
	})
	select {
	case <-ready:
		time.Sleep(delay)
	case <-child.eof:
		t.Error("the child ended before it opened the store")
	}
	killedAt := time.Now()
	child.kill(t)
	if len(unexpected) > 0 {
		t.Fatalf("the child wrote:\n%s", strings.Join(unexpected, "\n"))
	}

	after := dirNames(t, dir)
	o.midRewrite = midRewrite(before, after)
	records, torn := walkLogs(t, dir, after)
	m, err := memstore.Open(dir, 0)
	if err != nil {
		t.Fatalf("reopening after the kill: %v", err)
	}
	all, _ := m.All()
	restored := len(all)
	durableBy := killedAt.Add(-interval - crashMargin)
	if interval == 0 {
		durableBy = killedAt.Add(time.Hour) // every Commit acknowledged
	}
	for i := range model {
		token := crashToken(i)
		data, found := all[token]
		v := model[i].check(token, round, data, found, durableBy)
		if v.err != nil {
			t.Errorf("kill %d: %v", round, v.err)
		}
		if v.strict {
			o.strict++
		}
		model[i].baseline = v.seq
		delete(all, token)
	}
	for token := range all {
		t.Errorf("kill %d: %q was restored, a token the child never used", round, token)
	}

	st := m.Stats()
	o.tornRecords = st.TornRecords
	if st.TornRecords != torn {
		t.Errorf("kill %d: Stats().TornRecords = %d; the logs end in %d torn records", round, st.TornRecords, torn)
	}
	if st.Sessions != restored {
		t.Errorf("kill %d: Stats().Sessions = %d; All returned %d", round, st.Sessions, restored)
	}
	if st.DiskErrors != 0 {
		t.Errorf("kill %d: Stats().DiskErrors = %d; want 0", round, st.DiskErrors)
	}
	if err := m.Close(); err != nil {
		t.Errorf("kill %d: Close: %v", round, err)
	}
	// Open rewrites the directory when it replayed a record, in the
	// background, or in Close at the latest; and it deletes what the crash
	// left: the temporary, and the files the rewrite cut short would have.
	want := uint64(min(records, 1))
	if st := m.Stats(); st.Rewrites != want {
		t.Errorf("kill %d: Stats().Rewrites = %d after Close; want %d, as the logs held %d records", round, st.Rewrites, want, records)
	}
	if files := strings.Join(storeFiles(t, dir), " "); !cleanDir.MatchString(files) {
		t.Errorf("kill %d: after Open and Close the directory holds %s; want a log, and a base", round, files)
	}
	return o
}

// crashRecord adds to model the call that line, read at at, acknowledges.
func crashRecord(model []crashTokenRound, round uint64, line string, at time.Time) error {
	f := strings.Fields(line)
	if len(f) != 3 || (f[0] != "C" && f[0] != "D") {
		return fmt.Errorf("%s", line)
	}
	i, err1 := strconv.Atoi(f[1])
	seq, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || i < 0 || i >= crashTokens {
		return fmt.Errorf("%s", line)
	}
	r := &model[i]
	want := round*crashRoundSeqs + 1
	if n := len(r.acks); n > 0 {
		want = r.acks[n-1].seq + 1
	}
	if seq != want || (f[0] == "D") != crashIsDelete(seq-round*crashRoundSeqs) {
		return fmt.Errorf("%s: out of order, or the wrong call (want sequence number %d)", line, want)
	}
	r.acks = append(r.acks, crashAck{seq: seq, at: at})
	return nil
}

// midRewrite returns what in after, the names of the files of a directory
// that a store was killed in, shows that it was killed during a rewrite, or
// "" if nothing does; before are the names from before that store's Open.
//
// A rewrite of generation G+1 creates log G+1, writes base G+1 through a
// temporary base.*.tmp, renames it, and only then deletes the files of
// generations up to G, in the order of their names: log G, the store's log
// until the rewrite, is the last file deleted. The store's Open created one
// log, and Open removes any temporary a crash left, so until the first
// rewrite the directory holds some of before's files and one new log; after
// a rewrite, the new base and log alone (on a healthy disk: a rewrite that
// failed would leave its log too). So a temporary that was not there before
// is a base being written, and two logs that were not there before are a
// rewrite begun and not done: its new log and log G.
func midRewrite(before, after []string) string {
	var logs []string
	for _, name := range after {
		if slices.Contains(before, name) {
			continue
		}
		if strings.HasPrefix(name, "base.") && strings.HasSuffix(name, ".tmp") {
			return "a base being written: " + name
		}
		if strings.HasPrefix(name, "log.") {
			logs = append(logs, name)
		}
	}
	if len(logs) > 1 {
		return "a rewrite begun: " + strings.Join(logs, ", ")
	}
	return ""
}

// walkLogs counts the records of the logs among names, the files of dir,
// that Open reads (those of the newest base's generation and later), and
// those logs that end in a record cut short. It walks each log's records by
// their lengths, as FORMAT.md lays them out: a 25-byte start, then records
// of a 12-byte header, whose first 4 bytes are the payload's length, and
// the payload. A log that SIGKILL cut short ends before the last length
// says it does.
func walkLogs(t *testing.T, dir string, names []string) (records int, torn uint64) {
	t.Helper()
	newestBase := ""
	for _, name := range names {
		if strings.HasPrefix(name, "base.") && !strings.HasSuffix(name, ".tmp") {
			newestBase = max(newestBase, strings.TrimPrefix(name, "base."))
		}
	}
	for _, name := range names {
		gen, ok := strings.CutPrefix(name, "log.")
		if !ok || gen < newestBase {
			continue
		}
		b := readAll(t, filepath.Join(dir, name))
		end := 25
		for end+12 <= len(b) {
			if end += 12 + int(binary.BigEndian.Uint32(b[end:])); end <= len(b) {
				records++
			}
		}
		if len(b) > 0 && end != len(b) {
			torn++
		}
	}
	return records, torn
}
