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

// errorSharingViolation is Windows's ERROR_SHARING_VIOLATION.
const errorSharingViolation syscall.Errno = 32

// lockDir takes the lock on dir: dir/LOCK opened with no sharing, which
// Windows refuses to any other open until the returned file is closed or
// the process ends.
func lockDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, lockName)
	path, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	h, err := syscall.CreateFile(path, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		if errors.Is(err, errorSharingViolation) {
			return nil, fmt.Errorf("%w: %s is locked", ErrLocked, name)
		}
		return nil, fmt.Errorf("memstore: locking %s: %w", name, err)
	}
	return os.NewFile(uintptr(h), name), nil
}
