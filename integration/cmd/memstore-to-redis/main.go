// SPDX-License-Identifier: MIT

// Command memstore-to-redis copies every live session of a memstore into
// Redis, through scs's redisstore, with its data and expiry: the copy step
// of docs/migrating.md. It reads the directory the application gives
// memstore.Open, with memstore.OpenReadOnly, which changes nothing in it, or
// a snapshot the application wrote with WriteFile.
//
// Usage:
//
//	memstore-to-redis (-dir DIR | -snapshot FILE) -redis ADDR [-prefix P] [-allow-empty]
//
// ADDR is host:port, or a redis:// or rediss:// URL, which may carry a
// password and a database number. It prints what it read and what it wrote,
// and exits 0 only when the copy completed (a session that expired between
// the read and the copy is not copied, and is counted). A source holding no
// live session is refused, as a mistyped path would be, unless -allow-empty
// says that the store is empty. A directory that the application still
// holds is refused: stop the application first.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/golangcollege/memstore"
	"github.com/gomodule/redigo/redis"
)

// usageError is an error in the command line: the command exits 2 with
// usage, as the flag package does.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var usage usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &usage):
		fmt.Fprintf(os.Stderr, "memstore-to-redis: %v\nrun memstore-to-redis -h for usage\n", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "memstore-to-redis: %v\n", err)
		os.Exit(1)
	}
}

// run copies as args say, printing what it read and wrote to stdout, and
// flag errors and usage to stderr.
func run(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("memstore-to-redis", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dir := flags.String("dir", "", "the `directory` the application gives memstore.Open (read-only: nothing in it is changed)")
	snapshot := flags.String("snapshot", "", "or the snapshot `file` the application wrote with WriteFile")
	addr := flags.String("redis", "", "the Redis server: `host:port`, or a redis:// or rediss:// URL")
	prefix := flags.String("prefix", "scs:session:", "the key `prefix` of the application's redisstore (redisstore.New's is the default)")
	allowEmpty := flags.Bool("allow-empty", false, "succeed when the source holds no live session (the store is known to be empty)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	switch {
	case flags.NArg() > 0:
		return usageError{fmt.Sprintf("unexpected argument %q: every input is a flag", flags.Arg(0))}
	case (*dir == "") == (*snapshot == ""):
		return usageError{"give one of -dir (the directory the application gives memstore.Open) and -snapshot (a file it wrote with WriteFile)"}
	case *addr == "":
		return usageError{"give -redis, the Redis server the application will use (host:port or a redis:// URL)"}
	}
	where, dial, err := redisDialer(*addr)
	if err != nil {
		return err
	}

	src, from, err := openSource(*dir, *snapshot)
	if err != nil {
		return err
	}
	defer src.Close() // a read-only store or one from New: nothing to save
	read := 0
	for range src.Sessions() {
		read++
	}
	fmt.Fprintf(stdout, "read %d live sessions from %s\n", read, from)
	if read == 0 && !*allowEmpty {
		return fmt.Errorf("%s holds no live session: nothing copied. Check the path; if the store is empty, run again with -allow-empty", from)
	}

	pool := &redis.Pool{MaxIdle: 1, Dial: dial}
	defer pool.Close()
	if err := ping(pool); err != nil {
		return fmt.Errorf("cannot reach Redis at %s: %w; nothing copied", where, err)
	}
	start := time.Now()
	copied, err := src.CopyTo(redisstore.NewWithPrefix(pool, *prefix))
	if err != nil {
		return fmt.Errorf("copying to Redis at %s: %w. The source is unchanged: fix Redis and run again (a session copied twice is written once)", where, err)
	}
	fmt.Fprintf(stdout, "wrote %d sessions to Redis at %s, keys %s<token>, in %v\n", copied, where, *prefix, time.Since(start).Round(time.Millisecond))
	if copied < read {
		fmt.Fprintf(stdout, "%d sessions expired between the read and the copy\n", read-copied)
	}
	return nil
}

// openSource returns a store holding what dir or snapshot holds, and how to
// name it in messages.
func openSource(dir, snapshot string) (*memstore.MemStore, string, error) {
	if snapshot != "" {
		src := memstore.New(0)
		if err := src.ReadFile(snapshot); err != nil {
			return nil, "", fmt.Errorf("reading the snapshot: %w", err)
		}
		return src, "snapshot " + snapshot, nil
	}
	src, err := memstore.OpenReadOnly(dir)
	if errors.Is(err, memstore.ErrLocked) {
		return nil, "", fmt.Errorf("%w: stop the application first (it holds the directory while it runs)", err)
	}
	if err != nil {
		return nil, "", err
	}
	return src, "directory " + dir, nil
}

// redisTimeout bounds each connection, read and write, so that a Redis
// server that stops answering fails the copy rather than hangs it.
const redisTimeout = 10 * time.Second

// redisDialer returns how to name addr in messages (a URL without its
// password) and how to connect to it.
func redisDialer(addr string) (string, func() (redis.Conn, error), error) {
	opts := []redis.DialOption{
		redis.DialConnectTimeout(redisTimeout),
		redis.DialReadTimeout(redisTimeout),
		redis.DialWriteTimeout(redisTimeout),
	}
	if !strings.Contains(addr, "://") {
		return addr, func() (redis.Conn, error) { return redis.Dial("tcp", addr, opts...) }, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		// Its text would repeat the URL, password and all.
		return "", nil, usageError{"-redis: not a valid URL: want host:port or redis://[user:password@]host:port[/db]"}
	}
	if (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return "", nil, usageError{fmt.Sprintf("-redis %q: want host:port or a redis:// or rediss:// URL with a host", u.Redacted())}
	}
	return u.Redacted(), func() (redis.Conn, error) { return redis.DialURL(addr, opts...) }, nil
}

// ping checks that the server answers, before anything is copied.
func ping(pool *redis.Pool) error {
	conn := pool.Get()
	defer conn.Close()
	_, err := conn.Do("PING")
	return err
}
