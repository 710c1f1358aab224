// SPDX-License-Identifier: MIT

package integration

import (
	"syscall"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD, which package syscall does not name.
const rusageThread = 1

// threadTime returns the CPU time, user and system, that the calling
// thread has used; what = "cpu". The caller locks its goroutine to the
// thread (runtime.LockOSThread) around the span it measures, so that the
// time of other goroutines, the collector's included, stays out of it.
func threadTime() (t time.Duration, what string) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), "cpu"
}
