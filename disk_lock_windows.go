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
func lockDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, lockName)
	path, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	h, err := syscall.CreateFile(path, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL|fileFlagOpenReparsePoint, 0)
	if err != nil {
		if errors.Is(err, errorSharingViolation) {
			return nil, fmt.Errorf("%w: %s is locked", ErrLocked, name)
		}
		return nil, fmt.Errorf("memstore: locking %s: %w", name, err)
	}
	return os.NewFile(uintptr(h), name), nil
}
