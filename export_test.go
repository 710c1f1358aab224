// SPDX-License-Identifier: MIT

package memstore

// WithCollisions makes every token of the store hash to its length modulo
// three, so that tests exercise the sessions whose hashes collide.
func WithCollisions() Option {
	return func(m *MemStore) { m.fewHashes = true }
}

// WithRewriteSlack sets how far past twice the live sessions' size a log
// grows before a rewrite, so that tests see rewrites without writing
// megabytes.
func WithRewriteSlack(n int64) Option {
	return func(m *MemStore) { m.rewriteSlack = n }
}
