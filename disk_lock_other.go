// SPDX-License-Identifier: MIT

//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package memstore

import (
	"fmt"
	"os"
	"runtime"
)

// noFollow is 0: Open and OpenReadOnly are not available here.
const noFollow = 0

// lockDir fails: this package takes no advisory file lock on this system,
// and a durable store without one could be opened twice and corrupted.
func lockDir(dir string, shared bool) (*os.File, error) {
	return nil, fmt.Errorf("memstore: Open and OpenReadOnly are not available on %s: they need an advisory file lock", runtime.GOOS)
}
