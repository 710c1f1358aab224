// SPDX-License-Identifier: MIT

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore

import (
	"errors"
	"math"
	"os"
	"runtime"
	"syscall"
)

// seekData returns lseek's SEEK_DATA: 3 on Linux and FreeBSD, 4 on macOS.
// Where a system lacks it, lseek fails with EINVAL and nextData reports
// nothing.
func seekData() int {
	if runtime.GOOS == "darwin" {
		return 4
	}
	return 3
}

// nextData returns the offset of the first byte at or after off that is
// not in a hole of f, a sparse file's unwritten range, which reads as
// zeros; math.MaxInt64 if there is none. It reports false where the system
// or the file system cannot tell: every byte then counts as data.
func nextData(f *os.File, off int64) (int64, bool) {
	data, err := f.Seek(off, seekData())
	switch {
	case err == nil:
		return data, true
	case errors.Is(err, syscall.ENXIO): // no data at or after off
		return math.MaxInt64, true
	}
	return off, false
}
