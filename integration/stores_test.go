// SPDX-License-Identifier: MIT

package integration

import (
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/sqlite3store"
	"github.com/alexedwards/scs/v2"
	scsmemstore "github.com/alexedwards/scs/v2/memstore"
	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/storetest"
	"github.com/patrickmn/go-cache"
)

// The stores this module checks and measures: this module's memstore, as New
// and as Open (durable) make it, scs v2's own memstore, the original engine's
// go-cache design (cacheStore, below), and scs's stores on real databases:
// redisstore against a redis-server (redis_test.go), without persistence and
// with an append-only file synced every second, sqlite3store on a SQLite file
// in WAL mode (sqlite_test.go), postgresstore against a PostgreSQL server
// (postgres_test.go), the servers started by the tests on free loopback
// ports. The storetest kit runs over every one of them (kit_test.go); the
// workloads of compare_test.go run over those that live in this process's
// memory.

// The store types satisfy the kit's Store interface.
var (
	_ storetest.Store = (*memstore.MemStore)(nil) // from New and from Open
	_ storetest.Store = (*scsmemstore.MemStore)(nil)
	_ storetest.Store = (*cacheStore)(nil)
	_ storetest.Store = (*redisstore.RedisStore)(nil)
	_ storetest.Store = (*sqlite3store.SQLite3Store)(nil)
	_ storetest.Store = (*postgresstore.PostgresStore)(nil)
)

// store is what the workloads need of a session store: scs.Store.
type store = scs.Store

// storeKind is one of the stores checked and measured.
type storeKind struct {
	name string // as in store=NAME

	// open prepares what the store needs outside this process (a database
	// server) for the tests or benchmarks of tb, releasing it when tb ends,
	// and returns the store's constructor.
	open func(tb testing.TB) storetest.MakeStore

	// requires is the program the store needs and that may not be
	// installed (a database server), nil for none.
	requires *requirement

	// inProcess, for a store that lives in this process's memory, returns a
	// new, empty one whose janitor (if any) runs every cleanup (0: none);
	// held, which counts the sessions it holds, expired ones included; and
	// close, which stops the janitor. For scs-memstore with a janitor, close
	// must come after its first sweep: see scsHeld. Nil for the others.
	inProcess func(tb testing.TB, cleanup time.Duration) (s store, held func() int, close func())

	// removesWithoutJanitor, when not "", says how the store removes
	// expired sessions with no janitor running: BenchmarkSweepFindWait then
	// has no idle store to compare its sweep with.
	removesWithoutJanitor string

	// skips maps each storetest rule that storetest.Run skips for the store,
	// for want of the optional methods it needs, to why. TestStores checks
	// that exactly these are skipped, so that a store gaining the methods
	// shows.
	skips map[string]string

	// breaks maps each storetest rule the store is known to break to why.
	// TestStores skips those rules; TestPeerStoresBreakRules asserts that
	// each still fails, so that a fix in the peer store shows.
	breaks map[string]string

	// unmeasured, when not "", says why BenchmarkStores leaves the store
	// out.
	unmeasured string
}

// noCtxMethods is why storetest.Run skips a rule for a store without the
// methods of scs's CtxStore and IterableCtxStore.
const noCtxMethods = "no FindCtx, CommitCtx, DeleteCtx or AllCtx"

// stores are the stores checked and measured, in the order benchstat shows
// them.
var stores = []storeKind{
	{
		name: "memstore",
		// A janitor that sweeps every minute, as in the README's usage.
		open: inMemory(func(tb testing.TB) storetest.Store {
			m := memstore.New(time.Minute)
			tb.Cleanup(func() { m.Close() })
			return m
		}),
		inProcess: func(tb testing.TB, cleanup time.Duration) (store, func() int, func()) {
			m := memstore.New(cleanup)
			return m, m.Len, func() { m.Close() }
		},
	},
	{
		name: "memstore-durable",
		// The store of Open, each in a directory of its own, with a janitor
		// that sweeps every minute and the default sync interval: a second,
		// as Redis's appendfsync everysec. Not inProcess: how it holds its
		// sessions in memory, and sweeps them, is New's, which the
		// workloads of compare_test.go measure already; its disk is
		// measured by BenchmarkStores and by the root package's benchmarks.
		open: inMemory(openDurable),
	},
	{
		name: "scs-memstore",
		// No janitor: scs's StopCleanup races with the janitor's start (see
		// scsHeld), and its Find and All check the expiry anyway.
		open: inMemory(func(testing.TB) storetest.Store {
			return scsmemstore.NewWithCleanupInterval(0)
		}),
		inProcess: func(tb testing.TB, cleanup time.Duration) (store, func() int, func()) {
			m := scsmemstore.NewWithCleanupInterval(cleanup)
			held := scsHeld(tb, m)
			return m, held, func() {
				if cleanup > 0 {
					held() // see scsHeld
					m.StopCleanup()
				}
			}
		},
		skips: map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
	},
	{
		name: "go-cache",
		// No janitor: go-cache's Get checks the expiry anyway.
		open: inMemory(func(testing.TB) storetest.Store { return newCacheStore(0) }),
		inProcess: func(tb testing.TB, cleanup time.Duration) (store, func() int, func()) {
			c := newCacheStore(cleanup)
			// go-cache stops its janitor when the Cache is garbage-collected.
			return c, c.c.ItemCount, func() {}
		},
		skips: map[string]string{
			"all-returns-non-nil-map-of-live-sessions": "no All",
			"ctx-methods-behave-like-plain-ones":       noCtxMethods,
		},
		breaks: map[string]string{
			"past-expiry-never-found": "go-cache stores a lifetime of zero or less as one that never ends",
		},
	},
	{
		name: "otter",
		open: inMemory(func(tb testing.TB) storetest.Store {
			s := newOtterStore(time.Minute)
			tb.Cleanup(s.close)
			return s
		}),
		inProcess: func(tb testing.TB, cleanup time.Duration) (store, func() int, func()) {
			s := newOtterStore(cleanup)
			return s, s.c.EstimatedSize, s.close
		},
		removesWithoutJanitor: "otter removes expired entries during the upkeep that follows writes",
		skips:                 map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
	},
	{
		name:     "redis",
		open:     redisOpener(redisInMemory),
		requires: redisNeeded,
		skips:    map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
	},
	{
		name:     "redis-aof",
		open:     redisOpener(redisAppendOnly),
		requires: redisNeeded,
		skips:    map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
	},
	{
		name:  "sqlite",
		open:  openSQLite(sqliteBusyTimeout),
		skips: map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
	},
	{
		name:  "sqlite-no-busy-timeout",
		open:  openSQLite(0),
		skips: map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
		breaks: map[string]string{
			"concurrent-clients-read-own-writes": "with no busy_timeout, a connection's commit fails with SQLITE_BUSY while another writes",
		},
		unmeasured: "the store sqlite, with a busy_timeout, is the one measured: the timeout changes nothing when no one waits, and the parallel workload would fail",
	},
	{
		name:     "postgres",
		open:     openPostgres,
		requires: postgresNeeded,
		skips:    map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
	},
}

// inMemory returns the open of a store that needs nothing outside this
// process: it prepares nothing and returns f.
func inMemory(f storetest.MakeStore) func(testing.TB) storetest.MakeStore {
	return func(testing.TB) storetest.MakeStore { return f }
}

// storeNamed returns the store called name.
func storeNamed(name string) (storeKind, bool) {
	for _, k := range stores {
		if k.name == name {
			return k, true
		}
	}
	return storeKind{}, false
}

// inProcessStores returns the stores that live in this process's memory, for
// the workloads of compare_test.go.
func inProcessStores() []storeKind {
	var in []storeKind
	for _, k := range stores {
		if k.inProcess != nil {
			in = append(in, k)
		}
	}
	return in
}

// openDurable returns a store from memstore.Open in a new temporary
// directory of tb's. When tb ends it closes the store and opens the
// directory again, failing tb if either fails or if the directory restores a
// session: the kit deletes every session it commits, and a Delete is on disk
// before it returns.
func openDurable(tb testing.TB) storetest.Store {
	dir := filepath.Join(tb.TempDir(), "store") // Open makes it 0700: it refuses a directory others can reach

	m := openDir(tb, dir)
	tb.Cleanup(func() {
		if closeDir(tb, m, dir) != nil || tb.Failed() {
			return
		}
		again := openDir(tb, dir)
		defer closeDir(tb, again, dir)
		if n := again.Len(); n != 0 {
			tb.Errorf("%s restores %d sessions once the kit's store is released; want 0: the kit deletes every session it commits", dir, n)
		}
	})
	return m
}

// openDir returns memstore.Open(dir, time.Minute), failing tb now if it
// fails.
func openDir(tb testing.TB, dir string) *memstore.MemStore {
	tb.Helper()
	m, err := memstore.Open(dir, time.Minute)
	if err != nil {
		tb.Fatalf("memstore.Open(%s): %v", dir, err)
	}
	return m
}

// closeDir closes m, the store of dir, failing tb if Close fails, and
// returns Close's error.
func closeDir(tb testing.TB, m *memstore.MemStore, dir string) error {
	tb.Helper()
	err := m.Close()
	if err != nil {
		tb.Errorf("closing the store of %s: %v", dir, err)
	}
	return err
}

// cacheStore is the original design, as the first memstore engine built it:
// a github.com/patrickmn/go-cache Cache, whose values are interface{}s.
type cacheStore struct{ c *cache.Cache }

// newCacheStore returns an empty cacheStore whose go-cache janitor runs every
// cleanupInterval (0: none).
func newCacheStore(cleanupInterval time.Duration) *cacheStore {
	return &cacheStore{cache.New(cache.NoExpiration, cleanupInterval)}
}

// Find returns the slice stored under token, unboxed.
func (s *cacheStore) Find(token string) ([]byte, bool, error) {
	v, found := s.c.Get(token)
	if !found {
		return nil, false, nil
	}
	return v.([]byte), true, nil
}

// Commit keeps the caller's slice, boxed in an interface. Like the original,
// it passes the remaining lifetime on as is: go-cache treats one of zero or
// less as "never expires", a bug of that design that the storetest rule
// past-expiry-never-found catches (see go-cache's breaks, in stores).
func (s *cacheStore) Commit(token string, b []byte, expiry time.Time) error {
	s.c.Set(token, b, time.Until(expiry))
	return nil
}

// Delete removes token.
func (s *cacheStore) Delete(token string) error {
	s.c.Delete(token)
	return nil
}

// scsHeld returns a function that counts the sessions an scs v2 memstore
// holds, expired ones included, under the store's own read lock. scs's
// memstore exports no such count and no way to know that a sweep is done, so
// this reads its unexported items map and mu lock through reflect (checked:
// the benchmark fails if scs's fields change).
//
// Taking that lock after the janitor's first sweep also orders the
// janitor's start, where it sets the channel StopCleanup reads, before a
// StopCleanup: scs's StopCleanup otherwise races with that start, and called
// before it does nothing, leaving the goroutine and the store alive.
func scsHeld(tb testing.TB, m *scsmemstore.MemStore) func() int {
	v := reflect.ValueOf(m).Elem()
	items, mu := v.FieldByName("items"), v.FieldByName("mu")
	if !items.IsValid() || items.Kind() != reflect.Map || !mu.IsValid() || mu.Type() != reflect.TypeFor[sync.RWMutex]() {
		tb.Fatalf("scs's memstore.MemStore no longer has fields items (a map) and mu (a sync.RWMutex): update scsHeld")
	}
	lock := (*sync.RWMutex)(mu.Addr().UnsafePointer())
	return func() int {
		lock.RLock()
		defer lock.RUnlock()
		return items.Len()
	}
}
