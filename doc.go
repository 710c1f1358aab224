// SPDX-License-Identifier: MIT

// Package memstore is an in-memory session store for the scs session manager
// (github.com/alexedwards/scs/v2), and for the original scs engine API.
//
//	sessionManager := scs.New()
//	sessionManager.Store = memstore.New(time.Minute)
//
// New returns a store that lives in the memory of one process; Open returns
// one that also keeps its sessions in a directory, so that they survive a
// crash. Both are safe for concurrent use.
//
// # How a session is held
//
// Commit copies a session's token and data, side by side, into large byte
// chunks that are never modified afterwards. An index, a table keyed by a
// hash of the token, says where each session lies and when it expires. The
// table holds no pointers and the chunks are plain byte slices, so a million
// sessions add nothing for the garbage collector to mark.
//
// Find takes no lock: it reads the index with atomic loads and checks that
// no writer moved the entry meanwhile, so it never waits for a Commit, a
// Delete or the janitor. Writers take turns on one lock; Commit copies
// the data before it takes it.
//
// An overwrite, a Delete or an expiry leaves the old bytes behind in their
// chunk. The store reclaims them by copying the live sessions of a mostly
// dead chunk forward. The janitor, a goroutine New starts when given a
// cleanup interval, removes expired sessions in short batches, so no request
// waits for a whole sweep. WithMaxBytes caps the memory held, evicting the
// sessions nearest their expiry when room is short.
//
// # The durable mode
//
// A store from Open restores what its directory holds, then records every
// change in an append-only log there. Commit returns once the change is in
// memory; it reaches the disk within the sync interval, a second by default
// (see WithSyncInterval). Delete returns once the deletion is on disk, so a
// session a user logged out of never comes back after a crash. Find still
// reads memory alone. When the log has grown well past the live sessions, a
// background rewrite writes them afresh and drops the old files. A crash at
// any moment leaves a directory that Open restores; FORMAT.md describes its
// files.
//
// A store from New can be saved at shutdown instead: WriteFile once the HTTP
// server has stopped, ReadFile at the next start.
//
// # What to know
//
// Slices are shared. Commit copies the caller's bytes; Find, All and
// Sessions return the stored bytes themselves, without copying. Treat them
// as read-only. They stay valid for as long as the caller keeps them,
// whatever happens to the session afterwards.
//
// Expiry is counted on the monotonic clock. At Commit the store turns the
// expiry into a remaining lifetime, against the wall clock, and counts it
// down on the monotonic clock from then on, so a step of the wall clock moves
// no deadline. That clock stops while the machine is suspended, and a session
// outlives its expiry by that time. Find never returns an expired session.
//
// Close stops the janitor and, for a store from Open, puts what is pending
// on disk and releases the directory. Every method keeps working in memory
// after Close; only the background work stops.
//
// One process holds a store. Its directory is locked while open, and a
// second Open of it fails with ErrLocked: processes that must share
// sessions need a shared store, such as Redis or PostgreSQL. Sessions and
// CopyTo copy every live session into one, when the time comes.
//
// Sessions are stored in the clear on disk: they are credentials. Open
// refuses a directory that other users can reach, and every file the store
// writes with sessions in it has mode 0600.
package memstore
