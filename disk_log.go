// SPDX-License-Identifier: MIT

package memstore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"weak"
)

// retryInterval is how long the store waits, after a disk error or a failed
// rewrite, before it tries again.
const retryInterval = time.Second

// wakeAt is how many bytes of records pile up, at most, before the writer
// is woken to write them, however long until the next sync. Writing in
// large pieces is not the point (writeAt is): woken every 256 KiB, the
// writer made BenchmarkDurable's Commit under the default interval take
// 1.58x New's time rather than 1.38x on two cores, apparently by reading
// records still in the committing core's cache.
const wakeAt = 4 << 20

// wakeAtUnder returns how many bytes of records wake the writer under a cap
// of maxBytes, 0 meaning none: a sixteenth of the cap, if less than wakeAt,
// but at least writeAt. The records pending keep their chunks alive,
// evicted or not, outside Stats.Bytes, and so do those the writer is
// writing meanwhile: an eighth of the cap in all.
func wakeAtUnder(maxBytes int64) int {
	if maxBytes > 0 {
		return int(min(wakeAt, max(writeAt, maxBytes/16)))
	}
	return wakeAt
}

// writeAt is how many bytes of the log are written at a time.
const writeAt = 256 << 10

// maxPending is how many bytes of records a store lets pile up, if the disk
// falls behind, before a Commit waits for them to be written.
const maxPending = 16 << 20

// rewriteSlack is how far past twice the live sessions' size a log grows
// before a rewrite, so that a small store does not rewrite at every change:
// Redis's auto-aof-rewrite-min-size. A rewrite writes every live session,
// so under a stream of Commits it is the larger part of the disk's work.
const rewriteSlack = 64 << 20

// durableLog records a store's changes in its directory. Changes are queued
// in pending under MemStore.mu, in the order they change the store; the
// writer goroutine encodes, writes and syncs them. A Commit queues where its
// record is in a chunk, which is never modified, so that the checksums and
// the copy into the log happen on the writer's time, not on the Commit's.
//
// The writer's state is eleven flags. Each is set and cleared at the places
// below, and only there; "—" is never.
//
//	flag             set by                          cleared by                      while it is set
//	closed           stop                            —                               changes are refused: ErrNotDurable
//	failed           fail (a write or sync failed)   switchLog                       changes are dropped: ErrNotDurable
//	unsynced         write                           syncNow, syncInBackground,      a sync has records to make durable
//	                                                 switchLog
//	syncing          syncInBackground                backgroundSyncDone,             a sync runs: no second one starts
//	                                                 awaitBackgroundSync
//	syncAgain        syncInBackground, while         backgroundSyncDone (starting    another sync follows this one
//	                 syncing                         it), awaitBackgroundSync
//	owed             fail                            rewriteDone (to lostSinceSwitch) only a base catches up: Close writes one
//	lostSinceSwitch  fail                            switchLog                       a retried base needs a new log first
//	baseMissing      rewriteDone, on an error        startRewrite                    a retried base may keep the current log
//	due              retryLater; startLog (logs      startRewrite                    a rewrite starts once allowed
//	                 replayed, files of version 1)
//	retry            retryLater                      run, when it fires              no rewrite starts
//	rewritten        startRewrite                    rewriteDone                     a base is being written: no other starts
//
// closed and failed are guarded by mu, as Commits read them; the others
// belong to the writer goroutine.
type durableLog struct {
	dir      string
	interval time.Duration // see WithSyncInterval
	slack    int64         // rewriteSlack, smaller in tests
	wakeAt   int           // see wakeAt
	lock     *os.File      // holds dir's lock until the writer returns
	id       storeID       // the directory's identity, written into every file

	mu      sync.Mutex  // guards the fields below; taken after MemStore.mu when both are
	pending changeQueue // changes not written yet
	batch   *syncBatch  // completed by the next sync; nil until a caller waits for one
	failed  error       // why the last write or sync failed: records are not kept until a rewrite starts
	closed  bool        // Close has begun: records are not kept
	stats   diskStats   // what Stats reports of the disk

	wake     chan struct{} // holds a value when there are records for the writer
	done     chan struct{} // closed once, by stop, to ask the writer to finish
	stopOnce sync.Once
	exited   chan struct{} // closed by the writer as it returns
	closeErr error         // the first error the writer met finishing: set before exited is closed

	// Owned by the writer goroutine.
	file            *os.File         // the current log
	gen             uint64           // its generation
	written         int64            // its size
	unsynced        bool             // it has records written but not synced
	older           int64            // the bytes of the logs since the base, but the current one
	owed            bool             // records were lost to a disk error since the last base: only a rewrite catches up
	lostSinceSwitch bool             // records were lost since the current log started
	baseMissing     bool             // the current generation's base failed: a retry may write it without a new log
	due             bool             // a rewrite is wanted
	retry           <-chan time.Time // after a failure, fires when a rewrite may be tried again; nil otherwise
	rewritten       chan error       // the result of the rewrite in progress; nil when none is
	syncing         chan error       // the result of the background sync in progress; nil when none is
	syncAgain       bool             // a sync was asked for while it ran
	spare           changeQueue      // the other room for pending, empty
	out             []byte           // the log's bytes of the changes taken from pending
	owned           []string         // the store's files in dir but the current log: only these are ever deleted
	rewriteGen      uint64           // the generation of the base the rewrite in progress writes
}

// diskStats are the durable mode's figures in Stats.
type diskStats struct {
	syncs      uint64
	rewrites   uint64
	diskErrors uint64
	torn       uint64
	lastErr    error     // the last disk error
	lastErrAt  time.Time // when it happened
}

// syncBatch is one sync that callers wait for: the records appended before
// it was taken are on disk once done is closed, unless err says otherwise.
type syncBatch struct {
	done chan struct{}
	err  error // set before done is closed
}

// queuePutLocked records a Commit, whose record is the one reserved in r. It
// returns the sync to wait for, if the caller must. m.mu must be held for
// writing, so that changes are recorded in the order they are made.
func (l *durableLog) queuePutLocked(r reservation, expiry time.Time) *syncBatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	wait := l.interval == 0 || l.pending.size >= maxPending
	if err := l.refusingLocked(); err != nil {
		return refused(wait, err)
	}
	l.pending.addPut(r, unixNano(expiry))
	return l.queuedLocked(wait)
}

// queueDeleteLocked records a Delete, and returns the sync to wait for. m.mu
// must be held for writing. A token longer than maxSession needs no record:
// Commit refuses it, so it is on no disk.
func (l *durableLog) queueDeleteLocked(token string) *syncBatch {
	if len(token) > maxSession {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.refusingLocked(); err != nil {
		return refused(true, err)
	}
	l.pending.addDelete(token)
	return l.queuedLocked(true)
}

// refusingLocked returns why records are not kept now, if they are not.
// l.mu must be held.
func (l *durableLog) refusingLocked() error {
	switch {
	case l.closed:
		return fmt.Errorf("%w: the store is closed", ErrNotDurable)
	case l.failed != nil:
		return fmt.Errorf("%w: %w", ErrNotDurable, l.failed)
	}
	return nil
}

// refused returns a sync that failed with err, for a caller that waits.
func refused(wait bool, err error) *syncBatch {
	if !wait {
		return nil
	}
	b := &syncBatch{done: make(chan struct{}), err: err}
	close(b.done)
	return b
}

// queuedLocked wakes the writer, for a change just queued, if a caller waits
// or there is enough to write, and returns the sync the caller waits for, if
// it does. l.mu must be held.
func (l *durableLog) queuedLocked(wait bool) *syncBatch {
	if !wait {
		if l.pending.size >= l.wakeAt {
			l.signal()
		}
		return nil
	}
	if l.batch == nil {
		l.batch = &syncBatch{done: make(chan struct{})}
	}
	l.signal()
	return l.batch
}

func (l *durableLog) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// awaitSync waits for b, if not nil, and returns its error.
func awaitSync(b *syncBatch) error {
	if b == nil {
		return nil
	}
	<-b.done
	return b.err
}

// run writes and syncs records until stopped. It holds store weakly, like
// the janitor, so that a store its owner forgot to close can be collected.
func (l *durableLog) run(store weak.Pointer[MemStore]) {
	defer close(l.exited)
	var tick <-chan time.Time // syncs every interval; under an interval of 0, callers ask
	if l.interval > 0 {
		ticker := time.NewTicker(l.interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		sync := false
		select {
		case <-l.wake:
		case <-tick:
			sync = true
		case <-l.retry:
			l.retry = nil
		case err := <-l.rewritten:
			l.rewriteDone(err)
		case err := <-l.syncing:
			l.backgroundSyncDone(err)
		case <-l.done:
			l.closeErr = l.finish(store)
			return
		}
		l.flush(sync)
		if l.rewriteDue(store) {
			if m := store.Value(); m != nil {
				l.startRewrite(m)
			}
		}
	}
}

// flush writes the pending records, syncs them if a caller waits, and
// otherwise, if sync is set, starts syncing them in the background.
func (l *durableLog) flush(sync bool) {
	cs, b, failed := l.takePending()
	if l.writeOut(cs, b, failed, false) && sync {
		l.syncInBackground()
	}
}

// takePending takes the changes pending, the sync callers wait for, and the
// failure that keeps changes out, if any.
func (l *durableLog) takePending() (cs changeQueue, b *syncBatch, failed error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs, b, failed = l.pending, l.batch, l.failed
	l.pending, l.batch, l.spare = l.spare, nil, changeQueue{}
	return cs, b, failed
}

// writeOut writes cs, taken by takePending, to the current log, unless
// failed, syncs it if sync is set or a caller waits, and completes b.
func (l *durableLog) writeOut(cs changeQueue, b *syncBatch, failed error, sync bool) (kept bool) {
	var err error
	if failed == nil {
		err = l.encodeAndWrite(&cs)
		if err == nil && (sync || b != nil) {
			err = l.syncNow()
		}
	}
	cs.reset()
	l.spare = cs
	switch {
	case err != nil:
		l.fail(err)
		complete(b, fmt.Errorf("%w: %w", ErrNotDurable, err))
	case failed != nil:
		complete(b, fmt.Errorf("%w: %w", ErrNotDurable, failed))
	default:
		complete(b, nil)
	}
	return err == nil && failed == nil
}

// encodeAndWrite writes the records of cs to the current log, writeAt bytes
// at a time, so that the buffer they are encoded in stays small however many
// there are.
func (l *durableLog) encodeAndWrite(cs *changeQueue) error {
	l.out = l.out[:0]
	for _, c := range cs.list {
		if l.out = cs.appendTo(l.out, c); len(l.out) >= writeAt {
			if err := l.write(l.out); err != nil {
				return err
			}
			l.out = l.out[:0]
		}
	}
	err := l.write(l.out)
	if cap(l.out) > 2*writeAt {
		l.out = nil // grown for a large session: not kept
	}
	return err
}

// complete ends b, if not nil, with err.
func complete(b *syncBatch, err error) {
	if b != nil {
		b.err = err
		close(b.done)
	}
}

// write appends buf to the current log. On an error it cuts the log back to
// its size before, so that a part of a record never precedes later records.
func (l *durableLog) write(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	n, err := l.file.Write(buf)
	if err != nil {
		if n > 0 {
			// On Windows, where a file opened to append cannot be
			// truncated, this always fails: the part is then a torn last
			// record, as the log is not written to again.
			l.file.Truncate(l.written)
		}
		return err
	}
	l.written += int64(n)
	l.unsynced = true
	return nil
}

// syncNow makes the current log's records durable before it returns: it
// waits for the sync running in the background, if any, then syncs what was
// written since.
func (l *durableLog) syncNow() error {
	if err := l.awaitBackgroundSync(); err != nil {
		return err
	}
	if !l.unsynced {
		return nil
	}
	l.unsynced = false
	err := l.file.Sync()
	l.synced(err)
	return err
}

// syncInBackground syncs the current log's records in a goroutine of its
// own, so that the writer goes on writing meanwhile and the sync every
// interval makes no Commit wait, as Redis's background fsync does. One sync
// runs at a time: after a failed write-back, Linux reports the error to one
// fsync only, and another running beside it could succeed without the
// records it was to make durable. A sync asked for meanwhile runs after.
func (l *durableLog) syncInBackground() {
	switch {
	case !l.unsynced:
		return
	case l.syncing != nil:
		l.syncAgain = true
		return
	}
	done := make(chan error, 1)
	l.syncing, l.syncAgain, l.unsynced = done, false, false
	go func(f *os.File) { done <- f.Sync() }(l.file)
}

// backgroundSyncDone takes the result of the background sync, and starts
// the next if one was asked for meanwhile.
func (l *durableLog) backgroundSyncDone(err error) {
	l.syncing = nil
	l.synced(err)
	if err != nil {
		l.fail(err)
	} else if l.syncAgain {
		l.syncInBackground()
	}
}

// awaitBackgroundSync waits for the background sync, if one runs, and
// returns its error, having failed the log on one.
func (l *durableLog) awaitBackgroundSync() error {
	if l.syncing == nil {
		return nil
	}
	err := <-l.syncing
	l.syncing, l.syncAgain = nil, false
	l.synced(err)
	if err != nil {
		l.fail(err)
	}
	return err
}

// synced counts a sync that ended with err.
func (l *durableLog) synced(err error) {
	if err == nil {
		l.mu.Lock()
		l.stats.syncs++
		l.mu.Unlock()
	}
}

// fail stops keeping records after a write or sync failed with err: what the
// log misses from now on only a rewrite, writing every session afresh,
// catches up with, and it is tried after retryInterval. The callers waiting
// for the next sync get ErrNotDurable.
func (l *durableLog) fail(err error) {
	l.mu.Lock()
	l.failed = err
	l.pending.reset()
	b := l.batch
	l.batch = nil
	l.mu.Unlock()
	l.countDiskError(err)
	complete(b, fmt.Errorf("%w: %w", ErrNotDurable, err))
	l.owed, l.lostSinceSwitch = true, true
	l.retryLater()
}

// rewriteDue reports whether a rewrite should start now.
func (l *durableLog) rewriteDue(store weak.Pointer[MemStore]) bool {
	switch {
	case l.rewritten != nil || l.retry != nil:
		return false
	case l.due:
		return true
	}
	m := store.Value()
	if m == nil {
		return false
	}
	return l.older+l.written > 2*m.liveSnapshotBytes()+l.slack
}

// countDiskError counts a failed write, sync or rewrite, and keeps err for
// Stats.
func (l *durableLog) countDiskError(err error) {
	now := time.Now()
	l.mu.Lock()
	l.stats.diskErrors++
	l.stats.lastErr, l.stats.lastErrAt = err, now
	l.mu.Unlock()
}

// retryLater asks for a rewrite after retryInterval.
func (l *durableLog) retryLater() {
	l.due = true
	l.retry = time.After(retryInterval)
}

// stop asks the writer to finish, without waiting for it. It is safe to
// call any number of times, from any goroutine.
func (l *durableLog) stop() {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.done)
	})
}

// close stops the writer, waits for it, and returns the first error it met
// finishing.
func (l *durableLog) close() error {
	l.stop()
	<-l.exited
	return l.closeErr
}

// finish writes and syncs the records left, waits for a rewrite in
// progress, writes the sessions afresh if a disk error lost records since the
// last base or a rewrite is due (Open replayed logs, and the writer had not
// started folding them when Close came), and closes the log and the lock. It
// returns the first error met.
func (l *durableLog) finish(store weak.Pointer[MemStore]) error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	cs, b, failed := l.takePending()
	l.writeOut(cs, b, failed, true) // a failure is kept as owed, below
	l.awaitBackgroundSync()         // likewise
	if l.rewritten != nil {
		keep(l.rewriteDone(<-l.rewritten))
	}
	if m := store.Value(); (l.owed || l.due) && m != nil {
		if err := l.startRewrite(m); err != nil {
			keep(err)
		} else {
			keep(l.rewriteDone(<-l.rewritten))
		}
	}
	keep(l.file.Close())
	keep(l.lock.Close())
	if l.owed && first == nil {
		return fmt.Errorf("%w: changes lost to a disk error could not be written since", ErrNotDurable)
	}
	if l.owed && !errors.Is(first, ErrNotDurable) {
		return fmt.Errorf("%w: %w", ErrNotDurable, first)
	}
	return first
}

// addStats adds the durable mode's figures to st.
func (l *durableLog) addStats(st *Stats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st.Syncs = l.stats.syncs
	st.Rewrites = l.stats.rewrites
	st.DiskErrors = l.stats.diskErrors
	st.LastDiskError = l.stats.lastErr
	st.LastDiskErrorAt = l.stats.lastErrAt
	st.TornRecords = l.stats.torn
}
