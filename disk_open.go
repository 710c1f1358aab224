// SPDX-License-Identifier: MIT

package memstore

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"time"
	"weak"
)

// Open returns a store that holds its sessions in memory, as New does, and
// also in the directory dir, so that they survive a crash of the process or
// the machine. It restores what dir holds, skipping expired sessions, then
// records every change in an append-only log there. Find and All read memory
// alone.
//
// dir is created with mode 0700 if missing. An existing dir must give group
// and others no permission: its sessions are credentials, and Open refuses
// any other with an error wrapping ErrDirPermissions that names the fix.
//
// Commit returns once the change is in memory, and it is on disk within the
// sync interval (see WithSyncInterval). Delete returns once the deletion is
// on disk, so that a session a user logged out of never comes back after a
// crash. Evictions under WithMaxBytes are not recorded: after a crash an
// evicted session may come back.
//
// If the disk fails or is full, the store keeps serving from memory, reports
// the failure in Stats, and Delete, and Commit under a sync interval of 0,
// return an error wrapping ErrNotDurable. It tries again every second and
// catches up once the disk works; nothing already on disk is lost. Open
// fails only if it cannot create a file in dir at all.
//
// A crash at any moment leaves dir in a state Open restores: a record cut
// short at the end of a log is dropped and counted in Stats.TornRecords. Any
// other damage, or a file of another store, fails Open with an error wrapping
// ErrBadSnapshot that names the file, and changes nothing in dir. The store
// removes only files it wrote and follows no symbolic link. A background
// rewrite keeps dir within about three times the live sessions' size plus
// 64 MiB; requests do not wait for it. FORMAT.md describes the files.
//
// Open reads its files in a stream: beyond the sessions it restores, it
// needs about 70 bytes a session and a buffer the size of the largest one.
//
// One open store holds dir at a time: a second Open of it, in this process or
// another, or of a directory that OpenReadOnly holds, waits for the lock for
// up to a second (see WithLockTimeout), then fails with an error wrapping
// ErrLocked. Open works on Linux, macOS, the BSDs and Windows, and returns
// an error elsewhere. An Open that fails releases dir and returns a nil
// store.
//
// Close puts on disk what is not there yet and releases dir; after Close the
// store keeps working in memory but records nothing (see Close).
func Open(dir string, cleanupInterval time.Duration, opts ...Option) (*MemStore, error) {
	m := newStore(withDefaults(opts))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := lockWithin(dir, false, m.lockTimeout)
	if err != nil {
		return nil, err
	}
	d, err := m.restoreDir(dir, false)
	if err == nil {
		err = d.startLog(m, lock)
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	m.startJanitor(cleanupInterval)
	return m, nil
}

// OpenReadOnly returns a store holding the sessions that dir holds, which a
// store from Open wrote, and changes nothing in dir: it creates, writes,
// renames and removes no file, and starts no log. It is for reading a
// store's directory from another program, as one that copies its sessions
// elsewhere does (see CopyTo), without risk to the directory: run as
// another user, root say, Open would leave files that user owns, which the
// application could not open again.
//
// A dir that does not exist, or holds no file of a store, is refused with an
// error wrapping ErrNoStore that names it, and is not created: a mistyped
// path must not pass for a store with no sessions. A dir that Open would
// refuse (damaged files, a mode open to other users) is refused with the
// same error. Expired sessions are skipped, as by Open; a record that a
// crash cut short at the end of a log is dropped and counted in
// Stats.TornRecords, and stays in dir.
//
// OpenReadOnly shares dir with other read-only stores but not with a store
// from Open: while one holds dir the other waits for the lock (see
// WithLockTimeout), then fails with an error wrapping ErrLocked. So the
// application cannot start on dir, and change it, while a read-only store
// is open; Close releases dir. On Windows the lock is the LOCK file that
// Open creates: where dir has none, OpenReadOnly takes no lock.
//
// The store works in memory as one from Open does, and keeps working after
// Close, but it records nothing: Commit, Delete and ReadFile change it in
// memory and return an error wrapping ErrNotDurable, which says that the
// store is read-only, so that a program that was meant to write learns that
// it did not. It has no janitor: Find never returns an expired session, and
// CopyTo and Sessions skip them. Of the options, WithMaxBytes and
// WithLockTimeout apply.
//
// OpenReadOnly is a function of its own, not an option of Open, because it
// differs from Open in what it refuses and in what its store's writes do: a
// call that reads OpenReadOnly says so where it is made.
func OpenReadOnly(dir string, opts ...Option) (*MemStore, error) {
	m := newStore(withDefaults(opts))
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w: give the directory the application gives memstore.Open (nothing was created)", ErrNoStore, err)
		}
		return nil, err
	}
	lock, err := lockWithin(dir, true, m.lockTimeout)
	if err != nil {
		return nil, err
	}
	d, err := m.restoreDir(dir, true)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	l := &durableLog{
		dir:    dir,
		lock:   lock,
		id:     d.id,
		failed: fmt.Errorf("the store is read-only (from OpenReadOnly): nothing is written to %s", dir),
		stats:  diskStats{torn: d.torn},
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	// No writer: an interval of 0 makes every Commit wait for its sync,
	// which failed refuses at once, so that Commit returns the error too.
	m.syncInterval = 0
	m.log = l
	go func() {
		<-l.done
		if l.lock != nil {
			l.closeErr = l.lock.Close()
		}
		close(l.exited)
	}()
	runtime.AddCleanup(m, (*durableLog).stop, l)
	return m, nil
}

// withDefaults returns opts after the options that give Open's and
// OpenReadOnly's defaults, which opts override.
func withDefaults(opts []Option) []Option {
	return append([]Option{WithLockTimeout(defaultLockTimeout)}, opts...)
}

// lockWithin takes dir's lock, shared or not, waiting up to timeout while
// another store holds it. The wait polls, sleeping longer each time up to
// lockPoll, since no system offers a blocking flock with a timeout.
func lockWithin(dir string, shared bool, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	sleep := time.Millisecond
	for {
		lock, err := lockDir(dir, shared)
		if !errors.Is(err, ErrLocked) {
			return lock, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			if timeout > 0 {
				err = fmt.Errorf("%w, after waiting %v for it (see WithLockTimeout)", err, timeout)
			}
			return nil, err
		}
		time.Sleep(min(sleep, left))
		sleep = min(2*sleep, lockPoll)
	}
}

// lockPoll is the longest lockWithin sleeps between two tries: the wait
// ends at most this long after the lock is released.
const lockPoll = 20 * time.Millisecond

// restoredDir is what Open found in a directory.
type restoredDir struct {
	dir      string
	id       storeID  // the directory's identity: its files', or new
	baseGen  uint64   // the generation of the base restored; 0 for none
	nextGen  uint64   // the generation of the log to start: after every file found
	older    int64    // the bytes of the logs replayed
	replayed bool     // the logs held records
	upgrade  bool     // files of version 1 were read: a rewrite replaces them
	torn     uint64   // torn last records dropped
	owned    []string // the files restored, which a rewrite deletes
	stale    []string // files of the store a crash left, older generations and temporary files, and logs holding no record
	readOnly bool     // OpenReadOnly's: nothing in dir is opened for writing or synced
}

// startLog starts a new log in d and its writer, and attaches them to m.
// On an error nothing was started. Only a failure to create the log's file
// is an error: one to write or sync it is disk trouble, which the store
// rides out as it does once started, so that a restart on a full disk
// serves the sessions restored.
func (d restoredDir) startLog(m *MemStore, lock *os.File) error {
	file, err := newLogFile(d.dir, d.nextGen)
	if err != nil {
		return err
	}
	started := writeLogStart(file, d.dir, d.id)
	for _, name := range d.stale {
		os.Remove(filepath.Join(d.dir, name)) // left by a crash; a failure leaves them for the next Open
	}
	l := &durableLog{
		dir:      d.dir,
		interval: m.syncInterval,
		slack:    m.rewriteSlack,
		wakeAt:   wakeAtUnder(m.maxBytes),
		lock:     lock,
		id:       d.id,
		owned:    d.owned,
		stats:    diskStats{torn: d.torn},
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		file:     file,
		gen:      d.nextGen,
		written:  int64(logStartLen),
		older:    d.older,
		due:      d.replayed || d.upgrade, // fold the logs replayed into a base, and files of version 1
	}
	m.log = l
	if started != nil {
		// The log may lack its start, so it takes no record: the rewrite
		// that fail schedules starts a new one and catches up. A crash
		// before leaves this log empty or cut short, which Open reads as it
		// reads one a crash cut short as it was created.
		l.fail(started)
	}
	if l.due {
		l.signal() // the writer looks for work when woken
	}
	go l.run(weak.Make(m))
	runtime.AddCleanup(m, (*durableLog).stop, l)
	return nil
}

// restoreBase restores the base in f, a regular file of size bytes, into
// m, a store that Open has not returned yet, after check has accepted its
// version and store. It reads f twice: first only to check it, then to add
// its sessions. An error leaves m holding part of them: Open drops it.
//
// Two passes over a file, rather than ReadFrom's one over a stream, because
// m is Open's alone until Open returns, and dropped on an error: nothing
// need be held back until the checksum has passed, so the sessions go
// straight into place, a batch at a time, and the first pass counts them, so
// that the index is made that large at once without trusting the header.
// Beyond the sessions, a restore holds the set of the tokens met (about 70
// bytes a session: see FORMAT.md), a batch, and the stream's buffer: at most
// twice the largest entry, or 64 KiB.
func (m *MemStore) restoreBase(f *os.File, size int64, check func(version byte, store storeID) error) error {
	entries := 0
	d := m.snapReader(io.NewSectionReader(f, 0, size), size)
	d.check = check
	if err := decode(d, func(decoded) { entries++ }); err != nil {
		return err
	}
	m.reserveIndex(entries)
	m.startRestore()
	defer m.endRestore()
	mg := merger{m: m, batch: make([]restored, 0, batchSize), taken: make(map[string]struct{}, entries)}
	d = m.snapReader(io.NewSectionReader(f, 0, size), size)
	d.check = check
	err := decode(d, mg.add)
	mg.flush()
	if err == nil {
		err = mg.syncErr
	}
	return err
}

// dirFile is a file of the store's found in its directory.
type dirFile struct {
	name    string
	kind    fileKind
	gen     uint64
	version byte    // the version its header gives
	store   storeID // the store it gives, from version 2 on
	stored  int     // how many bytes of store the file holds: fewer in a log cut short as it was created
}

// baseTemp matches the name of a base being written: see writeTemp.
var baseTemp = regexp.MustCompile(`^base\.[0-9a-f]{16}\.[0-9]+\.tmp$`)

// restoreDir restores into m, which records nothing yet, the sessions that
// dir holds. On an error m is to be dropped and dir is unchanged. Read-only,
// it refuses a dir holding no file of a store.
func (m *MemStore) restoreDir(dir string, readOnly bool) (restoredDir, error) {
	d := restoredDir{dir: dir, readOnly: readOnly}
	m.deleted.paused = true // the logs hold deletes and re-commits that the store allowed when it made them
	defer func() { m.deleted.paused = false }()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return d, err
	}
	var files []dirFile
	var temps []string
	top, stray, strayName := uint64(0), uint64(0), ""
	for _, e := range entries {
		name := e.Name()
		if baseTemp.MatchString(name) && e.Type().IsRegular() {
			temps = append(temps, name)
			continue
		}
		kind, gen, ok := parseFileName(name)
		if !ok {
			continue // not the store's: left alone
		}
		top = max(top, gen)
		if !e.Type().IsRegular() {
			// A directory or a link by a store file's name: left alone,
			// never read, and named past.
			if gen >= stray {
				stray, strayName = gen, name
			}
			continue
		}
		f, err := readHeader(filepath.Join(dir, name), kind)
		if err != nil {
			return d, err
		}
		f.kind, f.gen = kind, gen
		files = append(files, f)
	}
	if stray > maxGen-genHeadroom {
		return d, fmt.Errorf("%w: %s is not a file, and its generation, %x, leaves the store too few names for its next files (it names them up to %x): move it out of %s",
			ErrBadSnapshot, filepath.Join(dir, strayName), stray, uint64(maxGen), dir)
	}
	if readOnly && len(files) == 0 {
		return d, fmt.Errorf("%w: %s holds no base.* or log.* file: give the directory the application gives memstore.Open", ErrNoStore, dir)
	}
	d.nextGen = max(top+1, 1)
	slices.SortFunc(files, cmpGen)
	if err := d.identify(files); err != nil {
		return d, err
	}
	if !readOnly {
		d.stale = d.ownTemps(temps)
	}
	return d, d.restore(m, files)
}

// cmpGen orders files by generation, a base before the log of its own.
func cmpGen(a, b dirFile) int {
	if c := cmp.Compare(a.gen, b.gen); c != 0 {
		return c
	}
	return cmp.Compare(a.kind, b.kind) // "base" < "log"
}

// readHeader reads what the header of the named file, of kind, says.
func readHeader(name string, kind fileKind) (dirFile, error) {
	f := dirFile{name: filepath.Base(name)}
	file, err := os.OpenFile(name, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return f, err
	}
	defer file.Close()
	head := make([]byte, len(magic)+1+len(storeID{}))
	n, err := io.ReadFull(file, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return f, err
	}
	head = head[:n]
	if kind == logFile {
		if n := cutShortStart(head); n >= 0 {
			// Empty, or cut short as it was created: readLog checks that
			// zeros follow. Its store is what it holds of one.
			f.version = logVersion
			f.stored = copy(f.store[:], head[min(n, len(logMagic)+1):n])
			return f, nil
		}
	}
	want, first := magic, "memstore snapshot"
	if kind == logFile {
		want, first = logMagic, "memstore log"
	}
	if len(head) <= len(want) || string(head[:len(want)]) != want {
		return f, &badInput{kind: string(kind) + " file", path: name, detail: fmt.Sprintf("not a %s (starts %q)", first, head[:min(len(head), len(want))])}
	}
	switch f.version = head[len(want)]; {
	case f.version == firstVersion:
	case f.version == version && len(head) == len(want)+1+len(f.store):
		f.stored = copy(f.store[:], head[len(want)+1:])
	case f.version == version:
		return f, &badInput{kind: string(kind) + " file", path: name, off: int64(len(head)), detail: "truncated in the store"}
	default:
		return f, &badInput{kind: string(kind) + " file", path: name, off: int64(len(want)),
			detail: fmt.Sprintf("unknown version %d (this package reads versions %d to %d)", f.version, firstVersion, version)}
	}
	return f, nil
}

// identify finds the directory's identity in files, sorted by generation:
// the one store every file of version 2 gives. Files of version 1 predate
// identities: they are taken as the directory's own only at generations
// before the first of version 2, which the store wrote since. A directory
// with no file of version 2 gets a new identity.
func (d *restoredDir) identify(files []dirFile) error {
	var known *dirFile
	for i := range files {
		if f := &files[i]; f.version >= 2 && f.stored == len(f.store) {
			if f.store == (storeID{}) {
				return fmt.Errorf("%w: %s was written by a store from New, with no directory: move it out of %s (and restore it with ReadFile)",
					ErrBadSnapshot, filepath.Join(d.dir, f.name), d.dir)
			}
			if known == nil {
				known = f
			} else if f.store != known.store {
				return fmt.Errorf("%w: %s and %s are of different stores (%x and %x): move out of %s the files of the store it does not belong to",
					ErrBadSnapshot, filepath.Join(d.dir, known.name), filepath.Join(d.dir, f.name), known.store, f.store, d.dir)
			}
		}
	}
	if known != nil {
		d.id = known.store
	} else {
		d.id = newStoreID()
	}
	var firstV2 *dirFile
	for i := range files {
		f := &files[i]
		switch {
		case f.version >= 2 && known != nil && !bytes.Equal(f.store[:f.stored], known.store[:f.stored]):
			return fmt.Errorf("%w: %s is of another store than %s (%x): move it out of %s",
				ErrBadSnapshot, filepath.Join(d.dir, f.name), filepath.Join(d.dir, known.name), known.store, d.dir)
		case f.version >= 2 && firstV2 == nil:
			firstV2 = f
		case f.version == firstVersion && firstV2 != nil:
			return fmt.Errorf("%w: %s is of format version 1, written after %s of version 2: not this store's; move it out of %s",
				ErrBadSnapshot, filepath.Join(d.dir, f.name), filepath.Join(d.dir, firstV2.name), d.dir)
		}
	}
	return nil
}

// newStoreID returns a new random identity, with no zero byte, so that the
// start of a log holds none (see cutShortStart).
func newStoreID() storeID {
	var id storeID
	for i := 0; i < len(id); {
		var b [2 * len(id)]byte
		rand.Read(b[:]) // never fails
		for _, c := range b {
			if c != 0 && i < len(id) {
				id[i], i = c, i+1
			}
		}
	}
	return id
}

// ownTemps returns those of the temporary files named temps that the store
// wrote: empty, as a crash can leave one, or beginning like a base of this
// store (or of version 1, which had no identity). Any other is left alone.
func (d *restoredDir) ownTemps(temps []string) []string {
	var own []string
	v2 := appendHeader(nil, d.id, 0)[:startLen+len(d.id)]
	v1 := []byte(magic + "\x01")
	for _, name := range temps {
		f, err := os.OpenFile(filepath.Join(d.dir, name), os.O_RDONLY|noFollow, 0)
		if err != nil {
			continue
		}
		head := make([]byte, len(v2))
		n, _ := io.ReadFull(f, head)
		f.Close()
		if head = head[:n]; bytes.HasPrefix(v2, head) || bytes.HasPrefix(head, v1) || bytes.HasPrefix(v1, head) {
			own = append(own, name)
		}
	}
	return own
}

// restore restores the newest base of files, then replays in order the logs
// of its generation and later ones. Files of earlier generations are stale.
func (d *restoredDir) restore(m *MemStore, files []dirFile) error {
	for _, f := range files {
		if f.kind == baseFile {
			d.baseGen = f.gen
		}
	}
	for _, f := range files {
		name := filepath.Join(d.dir, f.name)
		switch {
		case f.gen < d.baseGen:
			d.stale = append(d.stale, f.name)
			continue
		case f.kind == baseFile:
			if err := m.restoreBaseFile(name, d.check(f)); err != nil {
				return err
			}
			d.owned = append(d.owned, f.name)
		default:
			if err := d.replay(m, f); err != nil {
				return err
			}
		}
		d.upgrade = d.upgrade || f.version == firstVersion
	}
	return nil
}

// check returns what refuses a header that does not say what the survey of
// the directory found for f.
func (d *restoredDir) check(f dirFile) func(version byte, store storeID) error {
	return func(v byte, store storeID) error {
		if v != f.version || (v >= 2 && store != d.id) {
			return fmt.Errorf("%w: the header changed while Open read the directory", ErrBadSnapshot)
		}
		return nil
	}
}

// restoreBaseFile restores the base in the named file into m.
func (m *MemStore) restoreBaseFile(name string, check func(version byte, store storeID) error) error {
	f, size, err := openRegular(name, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := m.restoreBase(f, size, check); err != nil {
		if bad, ok := err.(*badInput); ok {
			bad.kind, bad.path = "base file", name
			return bad
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// openRegular opens the named file with flag, following no link, and
// returns it with its size, unless it is not a regular file.
func openRegular(name string, flag int) (*os.File, int64, error) {
	f, err := os.OpenFile(name, flag|noFollow, 0)
	if err != nil {
		return nil, 0, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("memstore: %s is not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, info.Size(), nil
}

// replay applies the log f to m. A log that holds no record is stale: a
// store that was opened and closed, or killed, before it recorded anything
// left it, and every such restart would leave one more.
func (d *restoredDir) replay(m *MemStore, f dirFile) error {
	name := filepath.Join(d.dir, f.name)
	// Opened for writing, to be synced: Windows syncs only a file open for
	// writing. Read-only, nothing follows the log, so it need not be synced.
	flag := os.O_RDWR
	if d.readOnly {
		flag = os.O_RDONLY
	}
	file, size, err := openRegular(name, flag)
	if err != nil {
		return err
	}
	defer file.Close()
	check := d.check(f)
	records := false
	torn, err := readLog(file, size, func(h logHeader) error { return check(h.version, h.store) }, func(c change) {
		d.replayed, records = true, true
		token := string(c.token)
		if !c.put || errors.Is(m.Commit(token, c.data, time.Unix(0, c.expiry)), ErrTooLarge) {
			m.Delete(token) // a session too large for the cap replaced the older one
		}
	})
	if _, ok := err.(*badInput); ok {
		return err // names the file
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// A crash of the process leaves the log's last records in the page
	// cache, not on disk: they are about to be served, and a new log to
	// follow them, so they must not be lost to a power cut after.
	if !d.readOnly {
		if err := file.Sync(); err != nil {
			return err
		}
	}
	if torn {
		d.torn++
	}
	if !records {
		d.stale = append(d.stale, f.name)
	} else {
		d.older += size
		d.owned = append(d.owned, f.name)
	}
	return nil
}
