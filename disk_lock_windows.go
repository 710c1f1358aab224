// SPDX-License-Identifier: MIT

//go:build windows

package memstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// noFollow is 0: os.OpenFile has no way to refuse a link on Windows. Open
// reads only the entries its listing of the directory reports as regular
// files.
const noFollow = 0

// errorSharingViolation is Windows's ERROR_SHARING_VIOLATION.
const errorSharingViolation syscall.Errno = 32

// fileFlagOpenReparsePoint is FILE_FLAG_OPEN_REPARSE_POINT: a link is opened
// itself, not followed.
const fileFlagOpenReparsePoint = 0x00200000

// lockName is the file in the directory whose handle holds the lock.
const lockName = "LOCK"

// lockDir takes the lock on dir: dir/LOCK opened with no sharing, which
// Windows refuses to any other open, and to deleting or renaming it, until
// the returned file is closed or the process ends. Windows has no mode bits
// to check: a directory's access is its ACL's, which the caller sets.
//
// A shared lock, OpenReadOnly's, opens dir/LOCK for reading, sharing it
// with other readers only: Open's exclusive open then fails, and so does a
// reader's while Open holds it. A shared lock creates nothing: where
// dir/LOCK is missing (no store from Open ever ran in dir on Windows: the
// files were copied there), it returns a nil file, no lock, and a store
// that Open starts meanwhile is not kept out.
func lockDir(dir string, shared bool) (*os.File, error) {
	name := filepath.Join(dir, lockName)
	path, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	access, share, disposition := uint32(syscall.GENERIC_READ|syscall.GENERIC_WRITE), uint32(0), uint32(syscall.OPEN_ALWAYS)
	if shared {
		access, share, disposition = syscall.GENERIC_READ, syscall.FILE_SHARE_READ, syscall.OPEN_EXISTING
	}
	h, err := syscall.CreateFile(path, access, share, nil,
		disposition, syscall.FILE_ATTRIBUTE_NORMAL|fileFlagOpenReparsePoint, 0)
	if err != nil {
		switch {
		case errors.Is(err, errorSharingViolation):
			return nil, fmt.Errorf("%w: %s is locked", ErrLocked, name)
		case shared && errors.Is(err, syscall.ERROR_FILE_NOT_FOUND):
			return nil, nil
		}
		return nil, fmt.Errorf("memstore: locking %s: %w", name, err)
	}
	return os.NewFile(uintptr(h), name), nil
}
