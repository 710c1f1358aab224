// SPDX-License-Identifier: MIT

package memstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A durable store's directory holds generations (see logfile.go). Open
// restores the newest base, then replays, in order, the logs of its
// generation and later ones. A rewrite starts generation G+1: it creates
// log G+1, switches the records appended from then on to it, writes the
// sessions as base G+1 (through a temporary file, renamed once synced), and
// only then deletes the files of generations up to G. The base is taken
// after the switch, so it holds every change of the earlier logs, and
// replaying log G+1 over it, some of whose changes it may hold already,
// gives the same sessions. A crash before the rename leaves base G (or none)
// and the logs since, all replayed; a crash after it leaves base G+1, and
// the older files are deleted by the next Open.

// restoredDir is what Open found in a directory.
type restoredDir struct {
	dir      string
	baseGen  uint64   // the generation of the base restored; 0 for none
	nextGen  uint64   // the generation of the log to start: after every file found
	older    int64    // the bytes of the logs replayed
	replayed bool     // the logs held records
	torn     uint64   // torn last records dropped
	stale    []string // files a crash left, older generations and temporary files, and logs holding no record
}

// restoreDir restores into m, which records nothing yet, the sessions that
// dir holds. On an error m is to be dropped and dir is unchanged.
func (m *MemStore) restoreDir(dir string) (restoredDir, error) {
	d := restoredDir{dir: dir}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return d, err
	}
	var logs []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, string(baseFile)+".") && strings.HasSuffix(name, ".tmp") {
			d.stale = append(d.stale, name) // a rewrite that a crash cut short
			continue
		}
		kind, gen, ok := parseFileName(name)
		if !ok {
			continue // not the store's: left alone
		}
		d.nextGen = max(d.nextGen, gen+1)
		if !e.Type().IsRegular() {
			continue // a directory or a FIFO by a store file's name: left alone, never read
		}
		if kind == logFile {
			logs = append(logs, gen)
		} else if gen > d.baseGen {
			if d.baseGen > 0 {
				d.stale = append(d.stale, fileName(baseFile, d.baseGen))
			}
			d.baseGen = gen
		} else {
			d.stale = append(d.stale, name)
		}
	}
	d.nextGen = max(d.nextGen, 1)
	if d.baseGen > 0 {
		if err := m.ReadFile(filepath.Join(dir, fileName(baseFile, d.baseGen))); err != nil {
			return d, err
		}
	}
	slices.Sort(logs)
	for _, gen := range logs {
		name := fileName(logFile, gen)
		if gen < d.baseGen {
			d.stale = append(d.stale, name)
			continue
		}
		if err := d.replay(m, filepath.Join(dir, name)); err != nil {
			return d, err
		}
	}
	return d, nil
}

// replay applies the log in the named file to m. A log that holds no
// record is stale: a store that was opened and closed, or killed, before
// it recorded anything left it, and every such restart would leave one
// more.
func (d *restoredDir) replay(m *MemStore, name string) error {
	records := false
	torn, err := readLog(name, func(c change) {
		d.replayed, records = true, true
		token := string(c.token)
		if !c.put || errors.Is(m.Commit(token, c.data, time.Unix(0, c.expiry)), ErrTooLarge) {
			m.Delete(token) // a session too large for the cap replaced the older one
		}
	})
	if err != nil {
		return err
	}
	// A crash of the process leaves the log's last records in the page
	// cache, not on disk: they are about to be served, and a new log to
	// follow them, so they must not be lost to a power cut after.
	if err := syncOpened(name, os.O_WRONLY); err != nil { // Windows syncs only a file open for writing
		return err
	}
	if torn {
		d.torn++
	}
	if !records {
		d.stale = append(d.stale, filepath.Base(name))
	} else if info, err := os.Stat(name); err == nil {
		d.older += info.Size()
	}
	return nil
}

// createLog creates the log of generation gen in dir, with its start,
// synced, its directory entry too. On an error it leaves nothing behind.
func createLog(dir string, gen uint64) (*os.File, error) {
	f, err := newLogFile(dir, gen)
	if err != nil {
		return nil, err
	}
	if err := writeLogStart(f, dir); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// newLogFile creates the file of the log of generation gen in dir, empty.
func newLogFile(dir string, gen uint64) (*os.File, error) {
	name := filepath.Join(dir, fileName(logFile, gen))
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
}

// writeLogStart writes the start of a log to f, a new file in dir, and
// syncs it and its directory entry.
func writeLogStart(f *os.File, dir string) error {
	_, err := f.Write(appendLogStart(nil))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(dir)
	}
	return err
}

// startRewrite writes the sessions afresh as a base, in the background; run
// collects the result from l.rewritten. It first starts generation l.gen+1
// (its log created, the records pending written to the current one, and the
// switch made), unless the base of the current generation failed before and
// no record was lost since its log started: a base taken any time after the
// switch serves, and retrying it adds no log per attempt while the disk
// refuses bases.
func (l *durableLog) startRewrite(m *MemStore) error {
	if !l.baseMissing || l.lostSinceSwitch {
		if err := l.switchLog(); err != nil {
			l.countDiskError()
			l.retryLater()
			return fmt.Errorf("memstore: rewriting %s: %w", l.dir, err)
		}
	}
	l.baseMissing, l.due = false, false
	gen := l.gen
	done := make(chan error, 1)
	l.rewritten = done
	go func() { done <- m.writeBase(l.dir, gen) }()
	return nil
}

// switchLog creates the log of generation l.gen+1, writes the records
// pending to the current one, and switches to the new: records appended
// from then on go to it. The failure that lost records, if any, ends there.
func (l *durableLog) switchLog() error {
	next := l.gen + 1
	file, err := createLog(l.dir, next)
	if err != nil {
		return err
	}
	cs, b, failed := l.takePending()
	l.writeOut(cs, b, failed, true)
	l.awaitBackgroundSync() // after a failure, one may still run; its error fails the log, which the base catches up with
	l.file.Close()          // synced, or lost to a failure the base catches up with
	l.mu.Lock()
	l.failed = nil
	l.mu.Unlock()
	l.older += l.written
	l.file, l.gen, l.written, l.unsynced = file, next, int64(logStartLen), false
	l.lostSinceSwitch = false
	return nil
}

// rewriteDone takes the result of the base written in the background, and
// returns err. A failed one is tried again after retryInterval.
func (l *durableLog) rewriteDone(err error) error {
	l.rewritten = nil
	if err != nil {
		l.countDiskError()
		l.baseMissing = true
		l.retryLater()
		return fmt.Errorf("memstore: rewriting %s: %w", l.dir, err)
	}
	l.mu.Lock()
	l.stats.rewrites++
	l.mu.Unlock()
	l.older = 0
	l.owed = l.lostSinceSwitch // what was lost before the switch, the base holds
	return nil
}

// writeBase writes the sessions as the base of generation gen in dir, and
// then deletes the files of the generations before.
func (m *MemStore) writeBase(dir string, gen uint64) error {
	if err := m.WriteFile(filepath.Join(dir, fileName(baseFile, gen))); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // the base is written; the next rewrite or Open deletes them
	}
	for _, e := range entries {
		if _, g, ok := parseFileName(e.Name()); ok && g < gen {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// liveSnapshotBytes estimates the size of a snapshot of the sessions held:
// an entry is a record and an expiry.
func (m *MemStore) liveSnapshotBytes() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.recordBytes + 8*int64(m.lenLocked())
}
