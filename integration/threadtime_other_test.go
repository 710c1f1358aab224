// SPDX-License-Identifier: MIT

//go:build !linux

package integration

import "time"

// epoch is where threadTime counts from.
var epoch = time.Now()

// threadTime returns the time on the monotonic clock, where the CPU time of
// a thread is not to be had; what = "wall".
func threadTime() (t time.Duration, what string) {
	return time.Since(epoch), "wall"
}
