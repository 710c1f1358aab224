// SPDX-License-Identifier: MIT

// Package nearstore is a session store for scs (github.com/alexedwards/scs/v2)
// that several instances of an application share: the sessions live in
// Redis, laid out as scs's redisstore lays them out, and each instance keeps
// a copy of those it uses in a local memstore.MemStore, which answers Find
// at in-memory speed.
//
//	store, err := nearstore.Dial(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:6379"}})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer store.Close()
//	sessionManager.Store = store
//
// # Consistency
//
// Redis pushes the name of every changed key under the prefix to every
// Store (client tracking in broadcast mode), which drops its copy at once.
// A change on one instance is seen by every other within the invalidation's
// delivery time, and never later than the heartbeat timeout (a second by
// default, see WithHeartbeat): a Store that has not heard from Redis within
// it stops answering from its copy, and reads Redis until it hears again.
// A Store sees its own writes at once.
//
// A Delete leaves a marker in Redis until the session's expiry, and a Commit
// of a token so marked is refused, atomically in Redis, with an error
// wrapping memstore.ErrDeleted: a logout on one instance is not undone by a
// slow request on another.
//
// docs/nearstore.md in the repository gives the failure modes and the
// figures measured.
package nearstore
