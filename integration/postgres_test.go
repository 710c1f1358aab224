// SPDX-License-Identifier: MIT

package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/alexedwards/scs/postgresstore"
	"github.com/golangcollege/memstore/storetest"
	_ "github.com/lib/pq" // the "postgres" database/sql driver
)

// The PostgreSQL launcher: scs's postgresstore runs over github.com/lib/pq
// against a real PostgreSQL server, which the tests create with initdb in a
// temporary directory, start on a free loopback port and stop when they end.
//
// The tests run the postgres server itself as their child process, as they
// do redis-server, rather than through pg_ctl, which would detach it: so it
// dies with the test binary (see stopWithTestBinary), and its log is kept
// for failure messages. Its SIGINT is pg_ctl's fast shutdown.

// skipPostgresEnv names the environment variable that, set to 1, turns the
// failure of the postgres store's cases on a machine without PostgreSQL into
// a skip.
const skipPostgresEnv = "MEMSTORE_SKIP_POSTGRES"

// postgresBinEnv names the environment variable that, when set, names the
// directory of initdb and postgres: then no other is searched.
const postgresBinEnv = "MEMSTORE_POSTGRES_BIN"

// postgresNeeded is PostgreSQL's server programs, which the postgres store's
// cases need.
var postgresNeeded = &requirement{
	skipEnv: skipPostgresEnv,
	find:    func(tb testing.TB) { postgresBinDir(tb) },
	hide:    func(dir string) []string { return []string{postgresBinEnv + "=" + dir} },
	advice:  []string{"PostgreSQL is not installed", "apt-get install -y postgresql"},
}

// postgresSchema is the schema that scs's postgresstore README gives.
var postgresSchema = sessionsSchema("BYTEA", "TIMESTAMPTZ")

// postgresRole is the superuser that initdb creates, and that the stores
// connect as.
const postgresRole = "memstore"

// openPostgres is the open of the postgres store: it starts a PostgreSQL
// server with postgresstore's schema for the tests or benchmarks of tb, and
// returns a constructor of postgresstores over a pool of connections to it,
// each with scs's default cleanup goroutine, stopped when its tb ends. Once
// they are released, it checks that the table holds no session.
func openPostgres(tb testing.TB) storetest.MakeStore {
	tb.Helper()
	db := openDB(tb, "postgres", startPostgres(tb))
	return sqlStores(tb, db, postgresSchema, postgresstore.New)
}

// postgresBinDir returns the directory that holds PostgreSQL's initdb and
// postgres: $MEMSTORE_POSTGRES_BIN when set; otherwise the directory of the
// initdb on the PATH, or the newest /usr/lib/postgresql/VERSION/bin (where
// Debian and Ubuntu install them, off the PATH). Where there is none, it
// fails tb with a message saying how to install PostgreSQL, or, when
// $MEMSTORE_SKIP_POSTGRES is 1, skips tb.
func postgresBinDir(tb testing.TB) string {
	tb.Helper()
	var candidates []string
	if dir := os.Getenv(postgresBinEnv); dir != "" {
		candidates = []string{dir}
	} else {
		if initdb, err := exec.LookPath("initdb"); err == nil {
			candidates = append(candidates, filepath.Dir(initdb))
			if real, err := filepath.EvalSymlinks(initdb); err == nil {
				candidates = append(candidates, filepath.Dir(real))
			}
		}
		candidates = append(candidates, debianPostgresBinDirs()...)
	}
	for _, dir := range candidates {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir
		}
	}
	where := "on the PATH or in /usr/lib/postgresql/*/bin"
	if dir := os.Getenv(postgresBinEnv); dir != "" {
		where = "in $" + postgresBinEnv + ", " + dir
	}
	skipOrFailMissing(tb, "PostgreSQL", "scs's postgresstore", skipPostgresEnv,
		fmt.Errorf("no initdb and postgres %s", where),
		"apt-get install -y postgresql   # Debian, Ubuntu",
		"brew install postgresql         # macOS",
		"or set "+postgresBinEnv+" to the directory of its initdb and postgres;")
	return ""
}

// debianPostgresBinDirs returns the directories /usr/lib/postgresql/*/bin,
// the newest version first.
func debianPostgresBinDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return int(version(b) - version(a)) })
	return dirs
}

// isExecutable reports whether path is a file that someone may execute.
func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// startPostgres creates a database cluster in a temporary directory with
// initdb, starts a postgres server on it listening on a free port of
// 127.0.0.1 (and on a Unix socket in that directory only), waits until it
// answers, and stops it when tb ends. When the tests run as root, both run as
// an unprivileged account, which owns the directory: PostgreSQL refuses to
// run as root. It returns the DSN to connect with.
func startPostgres(tb testing.TB) (dsn string) {
	tb.Helper()
	bin := postgresBinDir(tb)
	account := unprivilegedAccount(tb)
	// Not tb.TempDir: its parent directory is for this process's user only.
	root, err := os.MkdirTemp("", "memstore-postgres-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(root) })
	account.own(tb, root)
	data := filepath.Join(root, "data")

	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"--pgdata", data,
		"--username", postgresRole,
		"--auth", "trust", // loopback and the socket of root only
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync", // of initdb's own files: the server's settings are the defaults
	)
	initdb.Dir = root
	account.runs(initdb)
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}

	srv := launchServer(tb, serverSpec{
		name: "postgres",
		command: func(port int) *exec.Cmd {
			cmd := exec.Command(filepath.Join(bin, "postgres"),
				"-D", data,
				"-p", strconv.Itoa(port),
				"-c", "listen_addresses=127.0.0.1",
				"-c", "unix_socket_directories="+root,
			)
			cmd.Dir = root
			account.runs(cmd)
			return cmd
		},
		ping:       func(s *serverProcess) error { return pingPostgres(s, data) },
		portTaken:  "Address already in use",
		stopSignal: syscall.SIGINT,
	})
	return postgresDSN(srv.port)
}

// postgresDSN returns the DSN of the server on port of 127.0.0.1.
func postgresDSN(port int) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable", port, postgresRole)
}

// pingPostgres checks that s answers and is the server of the cluster in
// data, not another that took its port first.
func pingPostgres(s *serverProcess, data string) error {
	db, err := sql.Open("postgres", postgresDSN(s.port))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var dir string
	if err := db.QueryRowContext(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return err
	}
	if dir != data {
		return errors.New("the server answering on " + s.addr + " serves " + dir + ", not the cluster started in " + data)
	}
	return nil
}
