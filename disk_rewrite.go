// SPDX-License-Identifier: MIT

package memstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
			err = fmt.Errorf("memstore: rewriting %s: %w", l.dir, err)
			l.countDiskError(err)
			l.retryLater()
			return err
		}
	}
	l.baseMissing, l.due = false, false
	gen := l.gen
	l.rewriteGen = gen
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
	file, err := createLog(l.dir, next, l.id)
	if err != nil {
		return err
	}
	l.owned = append(l.owned, fileName(logFile, l.gen))
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
// returns err. A failed one is tried again after retryInterval. Once a base
// is written, the files of the generations before it are deleted: those the
// store knows it wrote, or restored, and no other.
func (l *durableLog) rewriteDone(err error) error {
	l.rewritten = nil
	if err != nil {
		err = fmt.Errorf("memstore: rewriting %s: %w", l.dir, err)
		l.countDiskError(err)
		l.baseMissing = true
		l.retryLater()
		return err
	}
	l.owned = slices.DeleteFunc(l.owned, func(name string) bool {
		_, gen, _ := parseFileName(name)
		if gen >= l.rewriteGen {
			return false
		}
		err := os.Remove(filepath.Join(l.dir, name))
		return err == nil || errors.Is(err, fs.ErrNotExist) // else the next rewrite tries again
	})
	l.owned = append(l.owned, fileName(baseFile, l.rewriteGen))
	l.mu.Lock()
	l.stats.rewrites++
	l.mu.Unlock()
	l.older = 0
	l.owed = l.lostSinceSwitch // what was lost before the switch, the base holds
	return nil
}

// writeBase writes the sessions as the base of generation gen in dir.
func (m *MemStore) writeBase(dir string, gen uint64) error {
	return m.WriteFile(filepath.Join(dir, fileName(baseFile, gen)))
}

// liveSnapshotBytes estimates the size of a snapshot of the sessions held:
// an entry is a record and an expiry.
func (m *MemStore) liveSnapshotBytes() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.recordBytes + 8*int64(m.lenLocked())
}
