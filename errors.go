// SPDX-License-Identifier: MIT

package memstore

import (
	"errors"
	"fmt"
)

// The sentinel errors, for errors.Is. An error that wraps one adds the
// detail in its text: the file, the offset, the mode.

// ErrTooLarge is wrapped by the error Commit returns for a session larger
// than the whole cap set by WithMaxBytes, or than the most a store holds.
var ErrTooLarge = errors.New("memstore: session larger than the store's byte cap")

// ErrNotDurable is wrapped by the error of a Delete, or of a Commit under a
// sync interval of 0, that changed the store in memory but could not put the
// change on disk: a write or fsync failed (the disk is full, say), the
// store was closed, or it came from OpenReadOnly, which writes nothing. The store keeps serving from memory, and it catches up on
// disk once the disk works again.
var ErrNotDurable = errors.New("memstore: change not on disk")

// ErrLocked is wrapped by the error of Open when another open store, in this
// process or another, holds the directory, and of OpenReadOnly when a store
// from Open holds it. Both wait for the lock first: see WithLockTimeout.
var ErrLocked = errors.New("memstore: directory in use by another store")

// ErrBadSnapshot is wrapped by every error of ReadFrom and ReadFile that
// comes from the input not being a valid snapshot: a bad magic number, an
// unknown version, a truncation, a checksum mismatch or an impossible length.
// Test for it with errors.Is. When it is returned the store is unchanged.
// Open wraps it too, when a file of its directory is damaged: its error then
// names the kind of file (a log file, a base file), its path and the offset
// where the damage begins, and points to docs/durability.md#damage, which
// says how to recover.
var ErrBadSnapshot = errors.New("memstore: bad snapshot")

// ErrDirPermissions is wrapped by the error of Open when dir lets users
// other than its owner read, write or enter it: its sessions are
// credentials. The error names the mode and the command that fixes it.
var ErrDirPermissions = errors.New("memstore: directory open to other users")

// ErrCopyIncomplete is wrapped, together with the target's own error, by the
// error of a CopyTo that the target store stopped: it says that some
// sessions were not copied.
var ErrCopyIncomplete = errors.New("memstore: copy incomplete")

// ErrDeleted is wrapped by the error of a Commit that the store refused
// because its token was deleted (by Delete, or by a Commit with an expiry
// already past) before the deadline the deleted session had: a request that
// loaded the session before a logout must not bring it back. The store is
// unchanged. With scs, LoadAndSave then calls the session manager's
// ErrorFunc and writes no cookie: answer as to a request without a session
// (a redirect to the login page, or 401), not as to a server fault.
var ErrDeleted = errors.New("memstore: session deleted")

// ErrNoStore is wrapped by the error of OpenReadOnly when its directory does
// not exist or holds no file of a store: a mistyped path, most likely, which
// must not pass for a store with no sessions. The error names the directory.
var ErrNoStore = errors.New("memstore: no store in the directory")

// badInput is the error of an input that is not what it should be: a
// snapshot, or a file of a store's directory. It wraps ErrBadSnapshot.
type badInput struct {
	kind   string // "log file" or "base file" of a store's directory; "" for a snapshot given to ReadFrom or ReadFile
	path   string // the file, where kind is set
	off    int64  // where the damage begins: the record, entry or field found bad
	detail string // what is wrong there
}

// Error says, for a file of a store's directory, what kind of file it is
// and where it is damaged, and where to read what to do: an operator meets
// it when Open refuses to start, and the remedy depends on both. A snapshot
// keeps the sentinel's words, its caller naming the file.
func (e *badInput) Error() string {
	if e.kind == "" {
		return ErrBadSnapshot.Error() + ": " + e.detail
	}
	return fmt.Sprintf("memstore: damaged %s %s at offset %d: %s; see memstore's docs/durability.md#damage", e.kind, e.path, e.off, e.detail)
}

func (e *badInput) Unwrap() error { return ErrBadSnapshot }
