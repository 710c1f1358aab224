// SPDX-License-Identifier: MIT

package memstore

import "time"

// Option configures a store; pass options to New or Open. New and Open
// apply every option in order, a later one overriding an earlier one of
// the same kind, and skip a nil Option. New ignores WithSyncInterval, as
// its stores write nothing to disk.
type Option func(*MemStore)

// WithMaxBytes caps the memory a store holds at n bytes: its chunks, as the
// allocator sizes them (live sessions, dead ones not yet reclaimed, the room
// not yet written, and each chunk's own header), the chunk directory and the
// index. Stats reports that figure as Bytes. Once no Commit is in flight,
// Bytes is within the cap, and the heap the store holds within the cap and
// 16 KiB, for sessions of any size. An n of zero or less means no cap, the
// default. New and Open both apply it.
//
// A Commit that would take the store past the cap makes room first: it
// reclaims dead bytes, then removes expired sessions, then evicts the live
// sessions nearest their expiry, sampled as Redis's volatile-ttl policy does.
// The session a Commit replaces is never evicted to make room for its new
// data (unless it has expired): Find sees the old data until the new takes
// its place. A session larger than the cap can hold, beside the store's
// fixed costs (about 1 KiB and a 64th of the cap), is refused with an error
// wrapping ErrTooLarge, and the store is left as it was. For a session of
// up to 4 KiB, making room holds the writers' lock for tens of microseconds
// at most, and evicts at most one chunk's sessions, no more than 1/64 of the
// cap.
//
// Bytes can pass the cap while Commits are in flight: a Commit's bytes count
// once it is published, and each Commit in flight may add up to one chunk
// (a 64th of the cap, at most 64 KiB), or its own session if that has a
// chunk of its own. In a store from Open, the records waiting for the log's
// writer keep their chunks alive: up to an eighth of the cap more (at least
// 512 KiB), up to 16 MiB while the disk falls behind, and the writer's
// buffer of up to 512 KiB besides.
func WithMaxBytes(n int64) Option {
	return func(m *MemStore) { m.maxBytes = max(n, 0) }
}

// WithSyncInterval sets how long a Commit to a store from Open may stay only
// in memory: a Commit is on disk, fsync'ed, at most d after it returns (plus
// the time a write and an fsync take). The default is one second, as Redis's
// appendfsync everysec. A d of 0 or less makes every Commit wait until it is
// on disk, concurrent Commits sharing one fsync. Delete is always on disk
// before it returns, whatever d. Only Open uses it: New accepts it and
// ignores it, as a store from New writes nothing to disk.
func WithSyncInterval(d time.Duration) Option {
	return func(m *MemStore) { m.syncInterval = max(d, 0) }
}

// WithReusableDeletedTokens lets a Commit store a session under a token
// that Delete removed (or a Commit with an expiry already past), as every
// other scs store does, for a program that reuses tokens on purpose.
//
// By default a store remembers the token of every session it deletes until
// the deadline that session had, and refuses a Commit of it until then with
// an error wrapping ErrDeleted: with scs's IdleTimeout set, every request
// commits its session, and a request that loaded it before a logout (or a
// RenewToken) would otherwise bring it back when it ends. Eviction, expiry
// and a Delete of a token not held remember nothing.
//
// A remembered token takes a 16-byte slot of a table kept between a quarter
// and three quarters full as it grows: 21 to 64 bytes each, and up to 128
// once expiries have emptied the table to an eighth, when the janitor
// shrinks it. They count in Stats.Bytes and against a cap. It is recognised by a keyed 64-bit fingerprint: a fresh
// random token is refused by mistake with a probability of n/2^64 for n
// tokens remembered. Under a cap the remembered tokens take at most a 16th
// of it: past that, those nearest their deadlines, deleted longest ago, are
// forgotten first (Stats.DeletedTokensDropped counts them), since a token is
// needed only while requests that loaded its session before the Delete may
// still run; live sessions are evicted for them only within that share. A
// store from New without a janitor forgets them as its table is rebuilt;
// none survives a restart (requests in flight die with the process), and
// snapshots, Sessions, CopyTo and All never list them.
func WithReusableDeletedTokens() Option {
	return func(m *MemStore) { m.deleted.reusable = true }
}

// defaultSyncInterval is Redis's appendfsync everysec.
const defaultSyncInterval = time.Second

// WithLockTimeout sets how long Open and OpenReadOnly wait for the lock on
// their directory while another store holds it, before they fail with an
// error wrapping ErrLocked. The default is one second, as a store just
// closed can keep its lock for a moment: a child process forked by any
// goroutine of the process (os/exec does so) holds a copy of the lock's
// file until it execs, which takes longer on a loaded machine. A d of 0 or
// less fails at once. The wait polls, so it ends a few milliseconds after
// the lock is released. New accepts it and ignores it.
func WithLockTimeout(d time.Duration) Option {
	return func(m *MemStore) { m.lockTimeout = max(d, 0) }
}

// defaultLockTimeout is long enough for a forked child to exec, and short
// enough that a store really held is reported promptly.
const defaultLockTimeout = time.Second
