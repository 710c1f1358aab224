// SPDX-License-Identifier: MIT

package memstore

import (
	"os"
	"runtime"
)

// syncDir makes a rename in dir durable: until the directory itself is
// synced, a crash can undo the rename even though the file's data is on disk.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // Windows offers no way to sync a directory
	}
	return syncOpened(dir, os.O_RDONLY)
}

// syncOpened opens name with flag, syncs it and closes it.
func syncOpened(name string, flag int) error {
	f, err := os.OpenFile(name, flag, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
