// SPDX-License-Identifier: MIT

package storetest

import "time"

// SetHangLimit sets how long the kit waits for a call to the store, so that
// the kit's own tests of stores that hang need not wait a minute, and
// returns a function that restores it.
func SetHangLimit(d time.Duration) (restore func()) {
	old := hangLimit
	hangLimit = d
	return func() { hangLimit = old }
}
