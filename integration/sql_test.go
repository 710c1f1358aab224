// SPDX-License-Identifier: MIT

package integration

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/golangcollege/memstore/storetest"
)

// What the SQL stores share: a pool of connections, the schema, and the
// check that the kit left the table empty.

// sqlStore is a store of scs's over a database/sql pool, with a cleanup
// goroutine.
type sqlStore interface {
	storetest.Store
	StopCleanup()
}

// sessionsSchema returns the schema that the READMEs of scs's SQL stores
// give, with the types of the data and expiry columns of one database (the
// rest is the same in each):
//
//	CREATE TABLE sessions (
//		token TEXT PRIMARY KEY,
//		data dataType NOT NULL,
//		expiry expiryType NOT NULL
//	);
//
//	CREATE INDEX sessions_expiry_idx ON sessions (expiry);
func sessionsSchema(dataType, expiryType string) string {
	return fmt.Sprintf(`
CREATE TABLE sessions (
	token TEXT PRIMARY KEY,
	data %s NOT NULL,
	expiry %s NOT NULL
);

CREATE INDEX sessions_expiry_idx ON sessions (expiry);
`, dataType, expiryType)
}

// sqlStores creates schema, the one the store's README gives, in db, and
// returns a constructor of the stores that newSQLStore makes over db (with
// scs's default cleanup goroutine, every 5 minutes), each stopped when its tb
// ends. Once they are released, it checks that the sessions table is empty.
func sqlStores[S sqlStore](tb testing.TB, db *sql.DB, schema string, newSQLStore func(*sql.DB) S) storetest.MakeStore {
	tb.Helper()
	if _, err := db.Exec(schema); err != nil {
		tb.Fatalf("creating the store's schema: %v", err)
	}
	expectEmptyWhenReleased(tb, "sessions", func() (int, error) { return countSessions(db) })
	return func(tb testing.TB) storetest.Store {
		s := newSQLStore(db)
		tb.Cleanup(s.StopCleanup)
		return s
	}
}

// openDB opens a database/sql pool with driver and dsn, closed when tb ends,
// that keeps idleConns idle connections (database/sql keeps 2 by default,
// and would open and close one per operation beyond them).
func openDB(tb testing.TB, driver, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatalf("opening %s database %s: %v", driver, dsn, err)
	}
	tb.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(idleConns())
	if err := db.Ping(); err != nil {
		tb.Fatalf("connecting to %s database %s: %v", driver, dsn, err)
	}
	return db
}

// countSessions returns how many rows the sessions table of db holds,
// expired ones included.
func countSessions(db *sql.DB) (int, error) {
	var n int
	err := db.QueryRow("SELECT count(*) FROM sessions").Scan(&n)
	return n, err
}
