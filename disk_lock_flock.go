// SPDX-License-Identifier: MIT

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// noFollow makes opening a file fail, rather than follow it, when it is a
// symbolic link.
const noFollow = syscall.O_NOFOLLOW

// lockDir takes the advisory lock on dir: an flock on dir itself, which the
// kernel releases when the returned file is closed or the process ends.
// Locking the directory, not a file in it, means that no file removed or
// replaced in dir can take the lock away, and no link can point it
// elsewhere. An flock belongs to the open file, not the process, so a
// second Open in the same process is refused too. lockDir refuses a
// directory that users other than its owner may reach.
//
// A shared lock, OpenReadOnly's, is held beside other shared ones but not
// beside the exclusive lock of Open: readers never see a writer's files
// change under them, and a writer never starts while a reader copies.
func lockDir(dir string, shared bool) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := checkDir(f, dir); err != nil {
		f.Close()
		return nil, err
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked", ErrLocked, dir)
		}
		return nil, fmt.Errorf("memstore: locking %s: %w", dir, err)
	}
	return f, nil
}

// checkDir refuses f, the directory dir, if it is not a directory, or if
// its mode lets users other than its owner read, write or enter it.
func checkDir(f *os.File, dir string) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("memstore: %s is not a directory", dir)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, which lets users other than its owner reach it; the sessions in it are credentials: run chmod 0700 %s",
			ErrDirPermissions, dir, uint32(perm), dir)
	}
	return nil
}
