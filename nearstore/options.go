// SPDX-License-Identifier: MIT

package nearstore

import (
	"time"

	"github.com/golangcollege/memstore"
)

// Option configures a Store; pass options to New or Dial. They apply in
// order, a later one overriding an earlier one of the same kind; a nil
// Option is skipped.
type Option func(*config)

// config is what the options set.
type config struct {
	prefix        string            // the sessions' key prefix, as redisstore's
	deletedPrefix string            // the deletion markers' key prefix; "" means "deleted:" + prefix
	heartbeat     time.Duration     // the longest the local copy is trusted without word from Redis
	cleanup       time.Duration     // the local copy's janitor interval
	local         []memstore.Option // the local copy's options
}

// DefaultPrefix is the key prefix of sessions in Redis, the one scs's
// redisstore uses, so that instances on redisstore and on this store share
// sessions.
const DefaultPrefix = "scs:session:"

// DefaultHeartbeat is the heartbeat timeout unless WithHeartbeat sets another.
const DefaultHeartbeat = time.Second

func defaultConfig() config {
	return config{prefix: DefaultPrefix, heartbeat: DefaultHeartbeat, cleanup: time.Minute}
}

// WithPrefix sets the key prefix of sessions in Redis (DefaultPrefix unless
// set), as redisstore.NewWithPrefix does: use the same prefix as the
// redisstore instances that share the sessions. It must not be empty, since
// the store subscribes to changes under it.
func WithPrefix(prefix string) Option {
	return func(c *config) { c.prefix = prefix }
}

// WithDeletedPrefix sets the key prefix of the markers that a Delete leaves
// beside a deleted session, "deleted:" followed by the session prefix unless
// set. It must not begin with the session prefix: redisstore lists every key
// under that prefix as a session.
func WithDeletedPrefix(prefix string) Option {
	return func(c *config) { c.deletedPrefix = prefix }
}

// WithHeartbeat sets the heartbeat timeout, DefaultHeartbeat unless set: the
// longest a Store serves from its local copy without having heard from its
// subscription to Redis's invalidations. It bounds how stale a read can be
// when that subscription fails silently. The Store pings Redis five times
// per timeout; a timeout under 10ms is raised to 10ms.
func WithHeartbeat(d time.Duration) Option {
	return func(c *config) { c.heartbeat = max(d, 10*time.Millisecond) }
}

// WithLocal sets the options of the local copy, a *memstore.MemStore: a byte
// cap with memstore.WithMaxBytes above all, which bounds the memory the near
// cache holds. Evicting a session from the local copy only makes its next
// Find read Redis.
func WithLocal(opts ...memstore.Option) Option {
	return func(c *config) { c.local = opts }
}

// WithCleanupInterval sets how often the local copy's janitor removes
// expired sessions (a minute unless set; 0 or less starts no janitor), as
// memstore.New's argument does.
func WithCleanupInterval(d time.Duration) Option {
	return func(c *config) { c.cleanup = d }
}
