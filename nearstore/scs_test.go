// SPDX-License-Identifier: MIT

package nearstore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/redis/rueidis"
)

// app is the handler of a small application on scs: /put?v=X stores X in
// the session, /get writes it, /logout destroys the session.
func app(store scs.Store) (*scs.SessionManager, http.Handler) {
	sm := scs.New()
	sm.Store = store
	sm.Lifetime = time.Hour
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "v", r.URL.Query().Get("v"))
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.GetString(r.Context(), "v"))
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return sm, sm.LoadAndSave(mux)
}

// httpGet gets url with c, failing t on an error or a status other than 200.
func httpGet(t testing.TB, c *http.Client, url string) string {
	t.Helper()
	body, err := tryGet(c, url)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// tryGet gets url with c, for goroutines other than the test's.
func tryGet(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", fmt.Errorf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %q, %v", url, resp.Status, body, err)
	}
	return string(body), nil
}

// newBrowser returns a client with a cookie jar of its own: the jar holds
// cookies by host, not port, so one browser carries its session cookie to
// both instances on 127.0.0.1.
func newBrowser(transport http.RoundTripper) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: transport}
}

// TestLogoutOnAReadOnB: over real HTTP, through scs's LoadAndSave, a user
// logs in on instance A, is known on B, logs out on A, and is then unknown
// on B.
func TestLogoutOnAReadOnB(t *testing.T) {
	srv := startRedis(t)
	_, ha := app(newStore(t, srv))
	_, hb := app(newStore(t, srv))
	a, b := httptest.NewServer(ha), httptest.NewServer(hb)
	defer a.Close()
	defer b.Close()
	user := newBrowser(nil)
	httpGet(t, user, a.URL+"/put?v=alice")
	if got := httpGet(t, user, b.URL+"/get"); got != "alice" {
		t.Fatalf("B after login on A: %q; want alice", got)
	}
	httpGet(t, user, b.URL+"/get") // B holds it locally now, most likely
	httpGet(t, user, a.URL+"/logout")
	out := time.Now()
	for {
		got := httpGet(t, user, b.URL+"/get")
		if got == "" {
			break
		}
		if time.Since(out) > DefaultHeartbeat {
			t.Fatalf("B gives %q %v after the logout on A; want no session within %v", got, time.Since(out), DefaultHeartbeat)
		}
	}
}

// redisCalls returns how many commands the server has run, less the
// heartbeat's PINGs and these INFO calls.
func redisCalls(t testing.TB, c rueidis.Client) int {
	t.Helper()
	info, err := c.Do(context.Background(), c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(line, ":calls=")
		if !ok || name == "cmdstat_ping" || name == "cmdstat_info" || strings.HasPrefix(name, "cmdstat_client") || name == "cmdstat_hello" {
			continue
		}
		n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		total += n
	}
	return total
}

// TestReadOnlyRequestsNeedNoRedis: once its session is held locally, a
// request through LoadAndSave that only reads its session makes no round
// trip to Redis.
func TestReadOnlyRequestsNeedNoRedis(t *testing.T) {
	srv := startRedis(t)
	store := newStore(t, srv)
	_, h := app(store)
	put := httptest.NewRecorder()
	h.ServeHTTP(put, httptest.NewRequest("GET", "/put?v=x", nil))
	cookie := put.Result().Cookies()[0]
	token := cookie.Value
	holdLocally(t, store, token)
	probe := srv.client(t)
	redisCalls(t, probe) // connects
	before := redisCalls(t, probe)
	for range 100 {
		r := httptest.NewRequest("GET", "/get", nil)
		r.AddCookie(cookie)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Body.String() != "x" {
			t.Fatalf("/get = %q; want x", w.Body.String())
		}
	}
	if n := redisCalls(t, probe) - before; n != 0 {
		t.Errorf("100 read-only requests ran %d Redis commands beside the heartbeat; want 0", n)
	}
}

// TestSideBySideWithRedisstore: instances on scs's redisstore and on this
// store share sessions during a rollout: each reads what the other wrote,
// with the same expiry, a write by redisstore invalidates the local copies,
// and redisstore's All lists no deletion marker.
func TestSideBySideWithRedisstore(t *testing.T) {
	srv := startRedis(t)
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", srv.addr()) }}
	defer pool.Close()
	old := redisstore.New(pool)
	near := newStore(t, srv)
	tok := newToken()
	expiry := time.Now().Add(time.Hour).Truncate(time.Millisecond)

	mustCommit(t, near, tok, "from near", expiry)
	if got, ok, err := old.Find(tok); err != nil || !ok || string(got) != "from near" {
		t.Fatalf("redisstore's Find = %q, %v, %v; want \"from near\"", got, ok, err)
	}
	conn := pool.Get()
	pexp, err := redis.Int64(conn.Do("PEXPIRETIME", "scs:session:"+tok))
	conn.Close()
	if err != nil || pexp != expiry.UnixMilli() {
		t.Errorf("the key's expiry = %d, %v; want %d, as redisstore sets it", pexp, err, expiry.UnixMilli())
	}

	holdLocally(t, near, tok)
	if err := old.Commit(tok, []byte("from redisstore"), expiry); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redisstore's write to reach the near cache", func() bool {
		got, _ := mustFind(t, near, tok)
		return got == "from redisstore"
	})

	if err := near.Delete(tok); err != nil {
		t.Fatal(err)
	}
	all, err := old.All()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range all {
		t.Errorf("redisstore's All lists %q = %q after the Delete; want nothing", k, v)
	}
}

// TestAuth: Dial passes rueidis's options through, AUTH included, and a
// wrong password fails Dial with an error that says so.
func TestAuth(t *testing.T) {
	srv := startRedis(t, "--requirepass", "s3cret")
	opt := srv.clientOption()
	opt.Password = "wrong"
	if s, err := Dial(opt); err == nil {
		s.Close()
		t.Fatal("Dial with a wrong password: no error")
	} else if !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("Dial with a wrong password: %v; want Redis's WRONGPASS", err)
	}
	opt.Password = "s3cret"
	s, err := Dial(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := newToken()
	mustCommit(t, s, tok, "x", time.Now().Add(time.Hour))
	if got, _ := mustFind(t, s, tok); got != "x" {
		t.Fatalf("Find = %q; want x", got)
	}
}

// TestBadOptions: options that cannot work are refused, naming the option.
func TestBadOptions(t *testing.T) {
	srv := startRedis(t)
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithPrefix("")}, `WithPrefix("")`},
		{[]Option{WithPrefix("s:"), WithDeletedPrefix("s:deleted:")}, `WithDeletedPrefix("s:deleted:")`},
	} {
		s, err := Dial(srv.clientOption(), tc.opts...)
		if err == nil {
			s.Close()
			t.Errorf("Dial with %s: no error", tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial: %v; want it to name %s", err, tc.want)
		}
	}
}
