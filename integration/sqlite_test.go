// SPDX-License-Identifier: MIT

package integration

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/alexedwards/scs/sqlite3store"
	"github.com/golangcollege/memstore/storetest"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// scs's sqlite3store runs over modernc.org/sqlite on a database file of its
// own, in a temporary directory, in WAL mode with SQLite's default
// synchronous=FULL (every commit synced to disk), with the schema of
// sqlite3store's README.

// sqliteSchema is the schema that scs's sqlite3store README gives.
var sqliteSchema = sessionsSchema("BLOB", "REAL")

// sqliteBusyTimeout is how long a connection of the sqlite store waits for
// another's write lock before its statement fails with SQLITE_BUSY.
// modernc.org/sqlite waits not at all unless told to (where mattn/go-sqlite3,
// which scs's sqlite3store README uses, waits 5 s), so the first of two
// concurrent writers wins and the other fails: the store
// sqlite-no-busy-timeout shows it. An application that commits sessions from
// concurrent requests sets it, and so does the sqlite store.
const sqliteBusyTimeout = 10 * time.Second

// openSQLite returns the open of a sqlite store whose connections wait
// busyTimeout for a lock (0: not at all, modernc.org/sqlite's default). It
// creates a database file in WAL mode with sqlite3store's schema for the
// tests or benchmarks of tb, and returns a constructor of sqlite3stores over
// it, each with scs's default cleanup goroutine, stopped when its tb ends.
// Once they are released, it checks that the table holds no session.
func openSQLite(busyTimeout time.Duration) func(testing.TB) storetest.MakeStore {
	return func(tb testing.TB) storetest.MakeStore {
		tb.Helper()
		file := filepath.Join(tb.TempDir(), "sessions.db")
		dsn := "file:" + file + "?_pragma=journal_mode(WAL)"
		if busyTimeout > 0 {
			dsn += fmt.Sprintf("&_pragma=busy_timeout(%d)", busyTimeout.Milliseconds())
		}
		db := openDB(tb, "sqlite", dsn)
		// Every connection runs the pragmas of the DSN as it opens: check
		// that they took.
		var mode string
		var timeout, synchronous int64
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			tb.Fatalf("PRAGMA journal_mode = %q, %v; want wal", mode, err)
		}
		// SQLite's default, FULL (2), syncs the write-ahead log at every
		// commit: what docs/comparison.md's comparison of crash-safe stores
		// counts on.
		if err := db.QueryRow("PRAGMA synchronous").Scan(&synchronous); err != nil || synchronous != 2 {
			tb.Fatalf("PRAGMA synchronous = %d, %v; want 2 (FULL)", synchronous, err)
		}
		if err := db.QueryRow("PRAGMA busy_timeout").Scan(&timeout); err != nil || timeout != busyTimeout.Milliseconds() {
			tb.Fatalf("PRAGMA busy_timeout = %d, %v; want %d", timeout, err, busyTimeout.Milliseconds())
		}
		return sqlStores(tb, db, sqliteSchema, sqlite3store.New)
	}
}
