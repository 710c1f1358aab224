// SPDX-License-Identifier: MIT

package integration

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/golangcollege/memstore"
	"github.com/gomodule/redigo/redis"
)

// The way out: MemStore.CopyTo moves every live session, with its data and
// expiry, into scs's redisstore and postgresstore over real servers, and a
// server that goes down stops the copy with an error and leaves the source
// as it was.

// Each test copies migrateLive live sessions, and leaves behind
// migrateExpired that expired before the copy began.
const (
	migrateLive    = 2000
	migrateExpired = 500
)

// copiedExpiryTolerance is how far the expiry a target store reports may lie
// from the one committed to the source: Redis keeps milliseconds and
// PostgreSQL microseconds, and the source turns its monotonic deadline back
// into wall-clock time.
const copiedExpiryTolerance = time.Second

// redisKeyPrefix is what redisstore.New puts before every token in its keys.
const redisKeyPrefix = "scs:session:"

// sourceSession is what a test committed to the source store under one
// token.
type sourceSession struct {
	data   []byte
	expiry time.Time
}

// fillSource returns a store, with no janitor, holding live sessions of
// varied sizes (the empty one included) and distinct expiries, and expired
// sessions that it has not removed yet, and the tokens of both. The expired
// ones were committed to expire a second on; fillSource waits for that.
func fillSource(tb testing.TB, live, expired int) (src *memstore.MemStore, want map[string]sourceSession, gone []string) {
	tb.Helper()
	src = memstore.New(0)
	soon := time.Now().Add(time.Second)
	for i := range expired {
		token := fmt.Sprintf("expired-%05d", i)
		if err := src.Commit(token, []byte("expired "+token), soon); err != nil {
			tb.Fatal(err)
		}
		gone = append(gone, token)
	}
	want = make(map[string]sourceSession, live)
	now := time.Now()
	for i := range live {
		token := fmt.Sprintf("live-%05d", i)
		s := sourceSession{
			data:   bytes.Repeat([]byte{'a' + byte(i%26)}, i%400),
			expiry: now.Add(time.Hour + time.Duration(i)*time.Second),
		}
		if err := src.Commit(token, s.data, s.expiry); err != nil {
			tb.Fatal(err)
		}
		want[token] = s
	}
	time.Sleep(time.Until(soon) + 10*time.Millisecond)
	if n := src.Len(); n != live+expired {
		tb.Fatalf("the source holds %d sessions; want %d live and %d expired", n, live, expired)
	}
	return src, want, gone
}

// checkCopied fails tb unless a target holding sessions holds what want
// says: got reports a token's data and expiry as the target holds them.
func checkCopied(tb testing.TB, want map[string]sourceSession, held int, got func(token string) (data []byte, expiry time.Time, found bool, err error)) {
	tb.Helper()
	if held != len(want) {
		tb.Errorf("the target holds %d sessions; want the %d live ones", held, len(want))
	}
	for token, w := range want {
		data, expiry, found, err := got(token)
		switch {
		case err != nil:
			tb.Fatalf("reading %s from the target: %v", token, err)
		case !found:
			tb.Errorf("%s is not in the target", token)
		case !bytes.Equal(data, w.data):
			tb.Errorf("%s: the target holds %q; want %q", token, data, w.data)
		case expiry.Sub(w.expiry).Abs() > copiedExpiryTolerance:
			tb.Errorf("%s: the target's expiry is %v; want %v, within %v", token, expiry, w.expiry, copiedExpiryTolerance)
		}
	}
}

func TestCopyToRedis(t *testing.T) {
	t.Parallel()
	srv := startRedis(t, redisInMemory)
	pool := newRedisPool(srv.addr)
	t.Cleanup(func() { pool.Close() })
	src, want, gone := fillSource(t, migrateLive, migrateExpired)

	copied, err := src.CopyTo(redisstore.New(pool))
	if err != nil || copied != migrateLive {
		t.Fatalf("CopyTo = %d, %v; want %d, nil", copied, err, migrateLive)
	}

	conn := pool.Get()
	defer conn.Close()
	held, err := redis.Int(conn.Do("DBSIZE"))
	if err != nil {
		t.Fatal(err)
	}
	checkCopied(t, want, held, redisSession(conn))
	for _, token := range gone {
		if n, err := redis.Int(conn.Do("EXISTS", redisKeyPrefix+token)); err != nil || n != 0 {
			t.Errorf("EXISTS %s = %d, %v: an expired session was copied", token, n, err)
		}
	}
	// The test leaves an empty server, as the others do: see redisInMemory.
	if _, err := conn.Do("FLUSHDB"); err != nil {
		t.Fatal(err)
	}
}

// redisSession returns what reads a session from Redis over conn, under
// redisstore's key prefix: its data, and its expiry from its TTL.
func redisSession(conn redis.Conn) func(token string) ([]byte, time.Time, bool, error) {
	return func(token string) ([]byte, time.Time, bool, error) {
		data, err := redis.Bytes(conn.Do("GET", redisKeyPrefix+token))
		if errors.Is(err, redis.ErrNil) {
			return nil, time.Time{}, false, nil
		}
		if err != nil {
			return nil, time.Time{}, false, err
		}
		ttl, err := redis.Int64(conn.Do("PTTL", redisKeyPrefix+token))
		return data, time.Now().Add(time.Duration(ttl) * time.Millisecond), true, err
	}
}

func TestCopyToPostgres(t *testing.T) {
	t.Parallel()
	db := openDB(t, "postgres", startPostgres(t))
	if _, err := db.Exec(postgresSchema); err != nil {
		t.Fatal(err)
	}
	src, want, gone := fillSource(t, migrateLive, migrateExpired)

	copied, err := src.CopyTo(postgresstore.NewWithCleanupInterval(db, 0))
	if err != nil || copied != migrateLive {
		t.Fatalf("CopyTo = %d, %v; want %d, nil", copied, err, migrateLive)
	}

	held, err := countSessions(db)
	if err != nil {
		t.Fatal(err)
	}
	checkCopied(t, want, held, func(token string) (data []byte, expiry time.Time, found bool, err error) {
		err = db.QueryRow("SELECT data, expiry FROM sessions WHERE token = $1", token).Scan(&data, &expiry)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, time.Time{}, false, nil
		}
		return data, expiry, err == nil, err
	})
	for _, token := range gone {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM sessions WHERE token = $1", token).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d rows of %s, %v: an expired session was copied", n, token, err)
		}
	}
}

// killedAt is scs's redisstore over a server that the test kills once the
// store has committed n sessions: the next Commit meets a server that is
// down.
type killedAt struct {
	*redisstore.RedisStore
	srv *serverProcess
	n   int
}

func (k *killedAt) Commit(token string, b []byte, expiry time.Time) error {
	if k.n == 0 && !k.srv.killed {
		k.srv.kill()
	}
	k.n--
	return k.RedisStore.Commit(token, b, expiry)
}

func TestCopyToRedisDown(t *testing.T) {
	t.Parallel()
	src, _, _ := fillSource(t, migrateLive, 0)
	before, beforeStats := sourceSessions(src), src.Stats()

	for _, tc := range []struct {
		name   string
		target func(t *testing.T) memstore.Committer
		copied int
	}{
		{"killed mid-copy", func(t *testing.T) memstore.Committer {
			srv := startRedis(t, redisInMemory)
			pool := newRedisPool(srv.addr)
			t.Cleanup(func() { pool.Close() })
			return &killedAt{RedisStore: redisstore.New(pool), srv: srv, n: migrateLive / 2}
		}, migrateLive / 2},
		{"never up", func(t *testing.T) memstore.Committer {
			pool := newRedisPool(fmt.Sprintf("127.0.0.1:%d", freePort(t)))
			t.Cleanup(func() { pool.Close() })
			return redisstore.New(pool)
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			copied, err := src.CopyTo(tc.target(t))
			if copied != tc.copied || !errors.Is(err, memstore.ErrCopyIncomplete) {
				t.Fatalf("CopyTo = %d, %v; want %d and an error wrapping ErrCopyIncomplete", copied, err, tc.copied)
			}
			if count := fmt.Sprintf("%d sessions copied", tc.copied); !strings.Contains(err.Error(), count) {
				t.Errorf("CopyTo's error %q does not say %q", err, count)
			}
			t.Logf("CopyTo's error: %v", err)
			after := sourceSessions(src)
			if len(after) != len(before) || src.Stats() != beforeStats {
				t.Errorf("the source changed: %d sessions and %+v before the copy, %d and %+v after", len(before), beforeStats, len(after), src.Stats())
			}
			for token, s := range before {
				if a, ok := after[token]; !ok || !bytes.Equal(a.Data, s.Data) || a.Expiry.Sub(s.Expiry).Abs() > time.Millisecond {
					t.Errorf("%s: %+v before the copy, %+v after", token, s, a)
				}
			}
		})
	}
}

// sourceSessions returns what src.Sessions yields, by token.
func sourceSessions(src *memstore.MemStore) map[string]memstore.Session {
	all := make(map[string]memstore.Session)
	for s := range src.Sessions() {
		all[s.Token] = s
	}
	return all
}

// BenchmarkCopyToRedis measures CopyTo of b.N sessions, each with the 157
// bytes that scs's codec makes of a small session and an expiry an hour on,
// into scs's redisstore over a real redis-server with no persistence. Run
// with -benchtime 100000x for one copy of 100,000 sessions: ns/op is then
// the time per session. The source is filled outside the timing.
func BenchmarkCopyToRedis(b *testing.B) {
	srv := startRedis(b, redisInMemory)
	pool := newRedisPool(srv.addr)
	b.Cleanup(func() { pool.Close() })

	expiry := time.Now().Add(time.Hour)
	payload, err := scs.GobCodec{}.Encode(expiry, map[string]any{"userID": 1234567, "theme": "dark"})
	if err != nil {
		b.Fatal(err)
	}
	src := memstore.New(0)
	for range b.N {
		if err := src.Commit(scsToken(), payload, expiry); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	copied, err := src.CopyTo(redisstore.New(pool))
	b.StopTimer()
	if err != nil || copied != b.N {
		b.Fatalf("CopyTo = %d, %v; want %d, nil", copied, err, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	b.ReportMetric(float64(len(payload)), "payload-bytes")

	conn := pool.Get()
	defer conn.Close()
	if n, err := redis.Int(conn.Do("DBSIZE")); err != nil || n != b.N {
		b.Fatalf("DBSIZE = %d, %v; want %d", n, err, b.N)
	}
	if _, err := conn.Do("FLUSHDB"); err != nil {
		b.Fatal(err)
	}
}

// scsToken returns a token as scs makes them: 32 random bytes in URL-safe
// base64.
func scsToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
