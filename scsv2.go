// SPDX-License-Identifier: MIT

package memstore

import "time"

// This file holds the two calls of scs v2's own memstore package
// (github.com/alexedwards/scs/v2/memstore) that this package names
// otherwise, so that code written for it builds with only its import path
// changed. Its New() takes no argument, where this package's New keeps the
// original engine's New(cleanupInterval): write New(time.Minute) instead,
// scs's default interval.

// NewWithCleanupInterval returns a store whose janitor removes expired
// sessions every cleanupInterval, or a store without a janitor for an
// interval of zero or less, as scs v2's memstore function of that name does.
//
// Deprecated: Use New(cleanupInterval), which this calls.
func NewWithCleanupInterval(cleanupInterval time.Duration) *MemStore {
	return New(cleanupInterval)
}

// StopCleanup stops the janitor, as scs v2's memstore method of that name
// does.
//
// Deprecated: Use Close, which this calls: it also stops the janitor, and
// returns once the janitor has exited.
func (m *MemStore) StopCleanup() {
	m.Close()
}
