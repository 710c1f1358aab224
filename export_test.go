// SPDX-License-Identifier: MIT

package memstore

// WithCollisions makes every token of the store hash to its length modulo
// three, so that tests exercise the sessions whose hashes collide.
func WithCollisions() Option {
	return func(m *MemStore) { m.fewHashes = true }
}
