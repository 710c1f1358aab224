// SPDX-License-Identifier: MIT

// Package integration proves that memstore is a drop-in store for
// github.com/alexedwards/scs/v2: end-to-end tests through a real
// scs.SessionManager, an httptest.Server and cookie jars; side-by-side
// benchmarks against scs v2's own memstore and the original go-cache design;
// and the storetest kit's rules and costs for these and for scs's Redis,
// SQLite and PostgreSQL stores on real databases.
//
// It is a nested module so that the root module keeps zero dependencies.
package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/golangcollege/memstore"
)

// The store satisfies every store interface scs v2 defines.
var (
	_ scs.Store            = (*memstore.MemStore)(nil)
	_ scs.IterableStore    = (*memstore.MemStore)(nil)
	_ scs.CtxStore         = (*memstore.MemStore)(nil)
	_ scs.IterableCtxStore = (*memstore.MemStore)(nil)
)

// valueKey is the session key every handler below reads and writes.
const valueKey = "value"

// hello is what /put stores when the request names no value, as in the
// example server.
const hello = "Hello world!"

// routes returns the test application, not yet wrapped in sm.LoadAndSave:
//
//	/put?v=X       stores X (default "Hello world!") under valueKey
//	/get           writes back the value stored under valueKey, "" if none
//	/renew         renews the session token (as after a login)
//	/destroy       destroys the session (as at a logout)
//	/remember?v=X  stores X and asks for a persistent cookie (RememberMe)
func routes(sm *scs.SessionManager) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("v")
		if v == "" {
			v = hello
		}
		sm.Put(r.Context(), valueKey, v)
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.GetString(r.Context(), valueKey))
	})
	mux.HandleFunc("/renew", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/destroy", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/remember", func(w http.ResponseWriter, r *http.Request) {
		sm.RememberMe(r.Context(), true)
		sm.Put(r.Context(), valueKey, r.URL.Query().Get("v"))
	})
	return mux
}

// newSessionManager returns a session manager as an application would
// configure it, with store as its Store, and a test-friendly ErrorFunc that
// fails t.
func newSessionManager(t testing.TB, store scs.Store) *scs.SessionManager {
	t.Helper()
	sm := scs.New()
	sm.Store = store
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		t.Errorf("scs error on %s: %v", r.URL.Path, err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	return sm
}

// startServer serves routes(sm) through sm.LoadAndSave on a loopback
// httptest.Server that is closed when the test ends.
func startServer(t testing.TB, sm *scs.SessionManager) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(sm.LoadAndSave(routes(sm)))
	t.Cleanup(srv.Close)
	return srv
}

// browser is one user agent: an http.Client with a cookie jar of its own.
type browser struct {
	srv    *httptest.Server
	client *http.Client
	jar    *cookiejar.Jar
	base   *url.URL
}

// newBrowser returns a browser with an empty cookie jar talking to srv. Every
// browser of a test may share transport (nil means srv's own).
func newBrowser(t testing.TB, srv *httptest.Server, transport http.RoundTripper) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if transport == nil {
		transport = srv.Client().Transport
	}
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{
		srv:    srv,
		client: &http.Client{Jar: jar, Transport: transport, Timeout: time.Minute},
		jar:    jar,
		base:   base,
	}
}

// do requests path and returns the response, its body read and closed.
func (b *browser) do(path string) (*http.Response, string, error) {
	resp, err := b.client.Get(b.srv.URL + path)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp, string(body), fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return resp, string(body), nil
}

// get requests path and returns the body, failing t on any error.
func (b *browser) get(t testing.TB, path string) string {
	t.Helper()
	_, body, err := b.do(path)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// token returns the session cookie the jar would send, "" if none.
func (b *browser) token(name string) string {
	for _, c := range b.jar.Cookies(b.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setToken replaces the jar's session cookie with a non-persistent one
// holding token, as a client that kept an old cookie would send it.
func (b *browser) setToken(name, token string) {
	b.jar.SetCookies(b.base, []*http.Cookie{{Name: name, Value: token, Path: "/"}})
}

// storedValue decodes the session the store holds under token with scs's
// codec, and returns its valueKey value and whether the store found it.
func storedValue(t testing.TB, store *memstore.MemStore, token string) (string, bool) {
	t.Helper()
	b, found, err := store.Find(token)
	if err != nil {
		t.Fatalf("Find(%q): %v", token, err)
	}
	if !found {
		return "", false
	}
	_, values, err := scs.GobCodec{}.Decode(b)
	if err != nil {
		t.Fatalf("stored session %q does not decode: %v", token, err)
	}
	v, _ := values[valueKey].(string)
	return v, true
}

// waitFor polls cond every few milliseconds until it holds, failing t with
// what if it still does not after timeout. The timeout is a deadline for a
// loaded machine, never a claim about speed.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPutThenGet: a value put on one request is served on the next; the
// session cookie carries the token under which the store holds the session,
// and a second browser neither sees it nor shares its token.
func TestPutThenGet(t *testing.T) {
	store := memstore.New(time.Minute)
	t.Cleanup(func() { store.Close() })
	sm := newSessionManager(t, store)
	srv := startServer(t, sm)

	alice := newBrowser(t, srv, nil)
	if got := alice.get(t, "/get"); got != "" {
		t.Fatalf("a new browser got %q, want an empty session", got)
	}
	if n := store.Len(); n != 0 {
		t.Fatalf("a read-only request stored %d sessions, want 0", n)
	}

	alice.get(t, "/put")
	token := alice.token(sm.Cookie.Name)
	if len(token) != 43 {
		t.Fatalf("session cookie holds %q, want a 43-character scs token", token)
	}
	if v, found := storedValue(t, store, token); !found || v != hello {
		t.Fatalf("store holds (%q, %v) under the cookie's token, want (%q, true)", v, found, hello)
	}
	if got := alice.get(t, "/get"); got != hello {
		t.Fatalf("get after put served %q, want %q", got, hello)
	}

	bob := newBrowser(t, srv, nil)
	if got := bob.get(t, "/get"); got != "" {
		t.Fatalf("another browser was served %q, want an empty session", got)
	}
	bob.get(t, "/put?v=bob")
	if bobToken := bob.token(sm.Cookie.Name); bobToken == "" || bobToken == token {
		t.Fatalf("second browser's token %q, first's %q: want a distinct token", bobToken, token)
	}
	if got := alice.get(t, "/get"); got != hello {
		t.Fatalf("after another browser's put, the first was served %q, want %q", got, hello)
	}
	if n := store.Len(); n != 2 {
		t.Fatalf("store holds %d sessions, want 2", n)
	}
}

// TestRenewToken: after RenewToken the old token finds nothing in the store,
// and the data lives on under the new token, which the browser now sends.
func TestRenewToken(t *testing.T) {
	store := memstore.New(time.Minute)
	t.Cleanup(func() { store.Close() })
	sm := newSessionManager(t, store)
	srv := startServer(t, sm)
	b := newBrowser(t, srv, nil)

	b.get(t, "/put?v=before-login")
	oldToken := b.token(sm.Cookie.Name)
	b.get(t, "/renew")
	newToken := b.token(sm.Cookie.Name)

	if newToken == "" || newToken == oldToken {
		t.Fatalf("token after RenewToken is %q, before %q: want a new one", newToken, oldToken)
	}
	if _, found := storedValue(t, store, oldToken); found {
		t.Fatal("the old token still finds a session after RenewToken")
	}
	if v, found := storedValue(t, store, newToken); !found || v != "before-login" {
		t.Fatalf("new token finds (%q, %v), want (%q, true)", v, found, "before-login")
	}
	if n := store.Len(); n != 1 {
		t.Fatalf("store holds %d sessions after RenewToken, want 1", n)
	}
	if got := b.get(t, "/get"); got != "before-login" {
		t.Fatalf("served %q after RenewToken, want the data carried over", got)
	}

	// A client still holding the old token (an attacker who fixed it before
	// the login) gets an empty session.
	b.setToken(sm.Cookie.Name, oldToken)
	if got := b.get(t, "/get"); got != "" {
		t.Fatalf("the old token was served %q, want an empty session", got)
	}
}

// TestDestroy: Destroy removes the token from the store and the cookie from
// the browser, and the next request starts an empty session, even from a
// client that replays the old token.
func TestDestroy(t *testing.T) {
	store := memstore.New(time.Minute)
	t.Cleanup(func() { store.Close() })
	sm := newSessionManager(t, store)
	srv := startServer(t, sm)
	b := newBrowser(t, srv, nil)

	b.get(t, "/put")
	token := b.token(sm.Cookie.Name)
	if _, found := storedValue(t, store, token); !found {
		t.Fatal("no session stored after put")
	}
	b.get(t, "/destroy")
	if _, found := storedValue(t, store, token); found {
		t.Fatal("the destroyed token still finds a session")
	}
	if n := store.Len(); n != 0 {
		t.Fatalf("store holds %d sessions after Destroy, want 0", n)
	}
	if got := b.token(sm.Cookie.Name); got != "" {
		t.Fatalf("browser still holds session cookie %q after Destroy", got)
	}
	if got := b.get(t, "/get"); got != "" {
		t.Fatalf("the request after Destroy was served %q, want an empty session", got)
	}

	b.setToken(sm.Cookie.Name, token)
	if got := b.get(t, "/get"); got != "" {
		t.Fatalf("replaying the destroyed token was served %q, want an empty session", got)
	}
	if n := store.Len(); n != 0 {
		t.Fatalf("store holds %d sessions after read-only requests, want 0", n)
	}
}

// TestExpiry: a session past its Lifetime or IdleTimeout is not served, and
// the janitor then removes it, so that it no longer counts in Len. The
// browsers use non-persistent cookies, so the jar keeps sending the token and
// only the store decides.
func TestExpiry(t *testing.T) {
	const expiry = 300 * time.Millisecond
	const deadline = 30 * time.Second // for a loaded machine; far above expiry

	for _, tc := range []struct {
		name      string
		configure func(sm *scs.SessionManager)
		janitor   bool
	}{
		{"lifetime", func(sm *scs.SessionManager) { sm.Lifetime = expiry }, true},
		{"idle-timeout", func(sm *scs.SessionManager) { sm.Lifetime = time.Hour; sm.IdleTimeout = expiry }, true},
		// Without a janitor the expired session stays held but is never served.
		{"lifetime-no-janitor", func(sm *scs.SessionManager) { sm.Lifetime = expiry }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cleanup := time.Duration(0)
			if tc.janitor {
				cleanup = 10 * time.Millisecond
			}
			store := memstore.New(cleanup)
			t.Cleanup(func() { store.Close() })
			sm := newSessionManager(t, store)
			sm.Cookie.Persist = false
			tc.configure(sm)
			srv := startServer(t, sm)
			b := newBrowser(t, srv, nil)

			putSent := time.Now()
			b.get(t, "/put")
			token := b.token(sm.Cookie.Name)
			got := b.get(t, "/get")
			// The session was committed after putSent, so it cannot have
			// expired before putSent+expiry: check only if the get was
			// answered by then, since a loaded machine may be slower.
			if time.Since(putSent) < expiry && got != hello {
				t.Fatalf("served %q before the session could expire, want %q", got, hello)
			}

			// Poll the store, not the server: with an IdleTimeout every
			// request that finds the session would renew it.
			waitFor(t, deadline, "Find no longer returns the expired session", func() bool {
				_, found := storedValue(t, store, token)
				return !found
			})
			if got := b.get(t, "/get"); got != "" {
				t.Fatalf("the expired session was served %q, want an empty session", got)
			}
			if b.token(sm.Cookie.Name) != token {
				t.Fatal("the browser no longer sends the session cookie: the test proves nothing")
			}

			if tc.janitor {
				waitFor(t, deadline, "janitor removed the expired session (Len() == 0)", func() bool {
					return store.Len() == 0
				})
				return
			}
			if n := store.Len(); n != 1 {
				t.Fatalf("with no janitor Len() = %d, want the expired session still held (1)", n)
			}
		})
	}

	// Activity keeps a session with an IdleTimeout alive well past the
	// timeout, because scs commits every request's session with a new
	// expiry; checked only across gaps the machine kept short.
	t.Run("idle-timeout-renewed-by-activity", func(t *testing.T) {
		t.Parallel()
		const idle = 500 * time.Millisecond
		store := memstore.New(10 * time.Millisecond)
		t.Cleanup(func() { store.Close() })
		sm := newSessionManager(t, store)
		sm.Cookie.Persist = false
		sm.IdleTimeout = idle
		srv := startServer(t, sm)
		b := newBrowser(t, srv, nil)

		prevSent := time.Now()
		b.get(t, "/put")
		checked := 0
		for start := time.Now(); time.Since(start) < 3*idle; {
			time.Sleep(idle / 10)
			sent := time.Now()
			got := b.get(t, "/get")
			// The previous request committed an expiry of at least
			// prevSent+idle; this one read the store before now.
			if time.Since(prevSent) < idle {
				checked++
				if got != hello {
					t.Fatalf("an active session was served %q, want %q", got, hello)
				}
			}
			prevSent = sent
		}
		t.Logf("%d requests checked against the idle timeout", checked)
	})
}

// TestRememberMe: with Cookie.Persist off, only sessions that called
// RememberMe get a persistent cookie (Expires and Max-Age set to the
// session's expiry); after a browser restart, which keeps only persistent
// cookies, the remembered user is still served and the other is not.
func TestRememberMe(t *testing.T) {
	store := memstore.New(time.Minute)
	t.Cleanup(func() { store.Close() })
	sm := newSessionManager(t, store)
	sm.Cookie.Persist = false
	sm.Lifetime = time.Hour
	srv := startServer(t, sm)

	sessionCookie := func(resp *http.Response) *http.Cookie {
		t.Helper()
		for _, c := range resp.Cookies() {
			if c.Name == sm.Cookie.Name {
				return c
			}
		}
		t.Fatalf("%s set no session cookie", resp.Request.URL.Path)
		return nil
	}

	remembered := newBrowser(t, srv, nil)
	before := time.Now()
	resp, _, err := remembered.do("/remember?v=remembered")
	if err != nil {
		t.Fatal(err)
	}
	c := sessionCookie(resp)
	if c.MaxAge <= 0 || c.Expires.IsZero() {
		t.Fatalf("RememberMe gave cookie %v, want a persistent one (Max-Age and Expires set)", c)
	}
	// Expires is the session's expiry rounded up to a second: an hour away.
	if lo, hi := before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+2*time.Second); c.Expires.Before(lo) || c.Expires.After(hi) {
		t.Fatalf("persistent cookie expires %v, want within [%v, %v]", c.Expires, lo, hi)
	}

	forgotten := newBrowser(t, srv, nil)
	resp, _, err = forgotten.do("/put?v=forgotten")
	if err != nil {
		t.Fatal(err)
	}
	if c := sessionCookie(resp); c.MaxAge != 0 || !c.Expires.IsZero() {
		t.Fatalf("without RememberMe the cookie is %v, want a session cookie (no Max-Age, no Expires)", c)
	}

	// The preference is stored in the session and survives later requests.
	resp, _, err = remembered.do("/put?v=remembered-again")
	if err != nil {
		t.Fatal(err)
	}
	if c := sessionCookie(resp); c.MaxAge <= 0 {
		t.Fatalf("a later commit of a remembered session set cookie %v, want a persistent one", c)
	}

	// A browser restart keeps persistent cookies only.
	restart := func(b *browser, persistent bool) *browser {
		nb := newBrowser(t, srv, nil)
		if persistent {
			nb.setToken(sm.Cookie.Name, b.token(sm.Cookie.Name))
		}
		return nb
	}
	if got := restart(remembered, true).get(t, "/get"); got != "remembered-again" {
		t.Fatalf("after a restart the remembered user was served %q, want %q", got, "remembered-again")
	}
	if got := restart(forgotten, false).get(t, "/get"); got != "" {
		t.Fatalf("after a restart the other user was served %q, want an empty session", got)
	}
	if n := store.Len(); n != 2 {
		t.Fatalf("store holds %d sessions, want 2", n)
	}
}

// TestIterate: scs's Iterate visits exactly the live sessions of many users,
// with their data and tokens, and can act on them: here it destroys half of
// them, as an admin's "log out these users" would, and those users are then
// served empty sessions while the rest keep theirs.
func TestIterate(t *testing.T) {
	const users = 100
	store := memstore.New(time.Minute)
	t.Cleanup(func() { store.Close() })
	sm := newSessionManager(t, store)
	srv := startServer(t, sm)

	browsers := make([]*browser, users)
	want := make(map[string]string, users) // token -> value
	for i := range browsers {
		browsers[i] = newBrowser(t, srv, nil)
		v := fmt.Sprintf("user-%03d", i)
		browsers[i].get(t, "/put?v="+v)
		want[browsers[i].token(sm.Cookie.Name)] = v
	}
	// An expired session in the same store is not iterated.
	if err := store.Commit("expired-token", nil, time.Now().Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the extra session expired", func() bool {
		_, found, _ := store.Find("expired-token")
		return !found
	})

	got := make(map[string]string, users)
	err := sm.Iterate(context.Background(), func(ctx context.Context) error {
		got[sm.Token(ctx)] = sm.GetString(ctx, valueKey)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Iterate visited %d sessions, want %d", len(got), len(want))
	}
	for token, v := range want {
		if got[token] != v {
			t.Fatalf("Iterate gave token %q value %q, want %q", token, got[token], v)
		}
	}

	// Destroy the sessions of even-numbered users through Iterate.
	err = sm.Iterate(context.Background(), func(ctx context.Context) error {
		var i int
		if _, err := fmt.Sscanf(sm.GetString(ctx, valueKey), "user-%d", &i); err != nil {
			return err
		}
		if i%2 == 0 {
			return sm.Destroy(ctx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := store.Len(); n != users/2+1 { // the odd users, and the expired extra one
		t.Fatalf("store holds %d sessions after destroying half, want %d", n, users/2+1)
	}
	for i, b := range browsers {
		wantV := fmt.Sprintf("user-%03d", i)
		if i%2 == 0 {
			wantV = ""
		}
		if got := b.get(t, "/get"); got != wantV {
			t.Fatalf("user %d was served %q after the purge, want %q", i, got, wantV)
		}
	}

	// A store holding nothing live gives Iterate nothing to visit.
	empty := memstore.New(0)
	sm.Store = empty
	if err := sm.Iterate(context.Background(), func(context.Context) error {
		return errors.New("Iterate visited a session of an empty store")
	}); err != nil {
		t.Fatal(err)
	}
}

// recordingStore wraps a MemStore and records which of its methods scs
// calls, and whether each context-taking call got the request's context.
type recordingStore struct {
	*memstore.MemStore

	mu     sync.Mutex
	calls  map[string]int
	orphan int // context-taking calls whose ctx lacks markerKey
}

// markerKey marks the contexts that requests and the test pass to scs.
type markerKey struct{}

// newRecordingStore returns a recordingStore around a new MemStore.
func newRecordingStore() *recordingStore {
	return &recordingStore{MemStore: memstore.New(0), calls: make(map[string]int)}
}

// record counts a call of method, and whether ctx (nil for the methods that
// take none) lacks the marker.
func (s *recordingStore) record(method string, ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	if ctx != nil && ctx.Value(markerKey{}) == nil {
		s.orphan++
	}
}

// The methods below record the call, then call the MemStore's own.

// Find records and delegates.
func (s *recordingStore) Find(token string) ([]byte, bool, error) {
	s.record("Find", nil)
	return s.MemStore.Find(token)
}

// Commit records and delegates.
func (s *recordingStore) Commit(token string, b []byte, expiry time.Time) error {
	s.record("Commit", nil)
	return s.MemStore.Commit(token, b, expiry)
}

// Delete records and delegates.
func (s *recordingStore) Delete(token string) error {
	s.record("Delete", nil)
	return s.MemStore.Delete(token)
}

// All records and delegates.
func (s *recordingStore) All() (map[string][]byte, error) {
	s.record("All", nil)
	return s.MemStore.All()
}

// FindCtx records and delegates.
func (s *recordingStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	s.record("FindCtx", ctx)
	return s.MemStore.FindCtx(ctx, token)
}

// CommitCtx records and delegates.
func (s *recordingStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	s.record("CommitCtx", ctx)
	return s.MemStore.CommitCtx(ctx, token, b, expiry)
}

// DeleteCtx records and delegates.
func (s *recordingStore) DeleteCtx(ctx context.Context, token string) error {
	s.record("DeleteCtx", ctx)
	return s.MemStore.DeleteCtx(ctx, token)
}

// AllCtx records and delegates.
func (s *recordingStore) AllCtx(ctx context.Context) (map[string][]byte, error) {
	s.record("AllCtx", ctx)
	return s.MemStore.AllCtx(ctx)
}

// withMarker is middleware that marks every request's context.
func withMarker(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), markerKey{}, true)))
	})
}

// TestContextPath: scs calls this store's CtxStore and IterableCtxStore
// methods, never the plain ones, and hands them the request's own context;
// and the store's honouring of that context reaches the user: a request
// whose context is cancelled fails instead of being served or committed.
func TestContextPath(t *testing.T) {
	t.Run("recorded", func(t *testing.T) {
		store := newRecordingStore()
		t.Cleanup(func() { store.Close() })
		sm := newSessionManager(t, store)
		srv := httptest.NewServer(withMarker(sm.LoadAndSave(routes(sm))))
		t.Cleanup(srv.Close)
		b := newBrowser(t, srv, nil)

		b.get(t, "/put")        // CommitCtx
		b.get(t, "/get")        // FindCtx
		b.get(t, "/renew")      // FindCtx, DeleteCtx, CommitCtx
		b.get(t, "/destroy")    // FindCtx, DeleteCtx
		b.get(t, "/put?v=next") // CommitCtx
		ctx := context.WithValue(context.Background(), markerKey{}, true)
		if err := sm.Iterate(ctx, func(context.Context) error { return nil }); err != nil { // AllCtx
			t.Fatal(err)
		}

		store.mu.Lock()
		defer store.mu.Unlock()
		for _, m := range []string{"FindCtx", "CommitCtx", "DeleteCtx", "AllCtx"} {
			if store.calls[m] == 0 {
				t.Errorf("scs never called %s; calls: %v", m, store.calls)
			}
		}
		for _, m := range []string{"Find", "Commit", "Delete", "All"} {
			if store.calls[m] != 0 {
				t.Errorf("scs called plain %s %d times; calls: %v", m, store.calls[m], store.calls)
			}
		}
		if store.orphan != 0 {
			t.Errorf("%d calls did not get the request's context", store.orphan)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		store := memstore.New(0)
		t.Cleanup(func() { store.Close() })
		sm := scs.New()
		sm.Store = store
		var mu sync.Mutex
		var errs []error
		sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		app := routes(sm)
		// /cancel-then-put cancels the request's context inside the
		// handler, so that scs's commit at the end of LoadAndSave gets a
		// cancelled context; /cancelled/... arrives cancelled.
		app.HandleFunc("/cancel-then-put", func(w http.ResponseWriter, r *http.Request) {
			r.Context().Value(cancelKey{}).(context.CancelFunc)()
			sm.Put(r.Context(), valueKey, "never committed")
		})
		handler := sm.LoadAndSave(app)
		serve := func(path, token string, cancelFirst bool) *httptest.ResponseRecorder {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if cancelFirst {
				cancel()
			}
			req := httptest.NewRequestWithContext(context.WithValue(ctx, cancelKey{}, cancel), http.MethodGet, path, nil)
			if token != "" {
				req.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: token})
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			return rec
		}

		rec := serve("/put?v=kept", "", false)
		var token string
		for _, c := range rec.Result().Cookies() {
			token = c.Value
		}
		if rec.Code != http.StatusOK || token == "" {
			t.Fatalf("put: status %d, token %q", rec.Code, token)
		}

		if rec := serve("/get", token, true); rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "kept") {
			t.Fatalf("a cancelled request was answered %d %q, want a 500 from FindCtx", rec.Code, rec.Body)
		}
		if rec := serve("/cancel-then-put", token, false); rec.Code != http.StatusInternalServerError {
			t.Fatalf("a commit with a cancelled context was answered %d, want a 500 from CommitCtx", rec.Code)
		}
		if v, found := storedValue(t, store, token); !found || v != "kept" {
			t.Fatalf("after the cancelled commit the store holds (%q, %v), want (%q, true) unchanged", v, found, "kept")
		}
		if rec := serve("/get", token, false); rec.Body.String() != "kept" {
			t.Fatalf("a live request was served %q, want %q", rec.Body, "kept")
		}

		mu.Lock()
		defer mu.Unlock()
		if len(errs) != 2 {
			t.Fatalf("ErrorFunc saw %d errors (%v), want 2", len(errs), errs)
		}
		for _, err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("ErrorFunc saw %v, want context.Canceled from the store", err)
			}
		}
	})
}

// cancelKey carries a request's CancelFunc into its handler.
type cancelKey struct{}

// TestConcurrentClients: 50 browsers, each with its own jar, do 200 put/get
// round trips at once while the janitor runs every few milliseconds and
// removes short-lived sessions committed beside them. Every browser reads
// back exactly what it last wrote, keeps one token throughout, and at the
// end the store holds exactly the 50 sessions: nothing lost, nothing crossed
// between clients, nothing live removed by the janitor.
func TestConcurrentClients(t *testing.T) {
	const clients, rounds = 50, 200
	store := memstore.New(2 * time.Millisecond)
	t.Cleanup(func() { store.Close() })
	sm := newSessionManager(t, store)
	srv := startServer(t, sm)
	// One transport that keeps a connection per client open, so that the
	// test does not churn through ephemeral ports.
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	t.Cleanup(transport.CloseIdleConnections)

	// Short-lived sessions give the janitor something to remove while the
	// clients run.
	stopNoise := make(chan struct{})
	noiseDone := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stopNoise:
				noiseDone <- n
				return
			default:
			}
			store.Commit(fmt.Sprintf("noise-%d", n), []byte("x"), time.Now().Add(time.Millisecond))
			n++
			if n%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()

	browsers := make([]*browser, clients)
	for c := range browsers {
		browsers[c] = newBrowser(t, srv, transport)
	}
	tokens := make([]string, clients)
	lastWritten := make([]string, clients)
	var wg sync.WaitGroup
	for c, b := range browsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				v := fmt.Sprintf("client-%02d-round-%03d", c, r)
				if _, _, err := b.do("/put?v=" + v); err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				_, got, err := b.do("/get")
				if err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				if got != v {
					t.Errorf("client %d round %d read %q, want %q", c, r, got, v)
					return
				}
				tok := b.token(sm.Cookie.Name)
				if r == 0 {
					tokens[c] = tok
				} else if tok != tokens[c] {
					t.Errorf("client %d's token changed in round %d: the session was lost", c, r)
					return
				}
				lastWritten[c] = v
			}
		}()
	}
	wg.Wait()
	close(stopNoise)
	noise := <-noiseDone
	if t.Failed() {
		return
	}

	seen := make(map[string]int, clients)
	for c, tok := range tokens {
		if other, dup := seen[tok]; dup {
			t.Fatalf("clients %d and %d share token %q", other, c, tok)
		}
		seen[tok] = c
		if v, found := storedValue(t, store, tok); !found || v != lastWritten[c] {
			t.Fatalf("store holds (%q, %v) for client %d, want (%q, true)", v, found, c, lastWritten[c])
		}
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("janitor removed all %d short-lived sessions (Len() == %d)", noise, clients), func() bool {
		return store.Len() == clients
	})
	all, err := store.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != clients {
		t.Fatalf("All holds %d sessions, want %d", len(all), clients)
	}
	t.Logf("%d requests; the janitor removed %d short-lived sessions meanwhile", clients*rounds*2, noise)
}

// engine is the original scs engine interface (scs v1's session.Engine),
// which the first memstore implemented and its users still program against.
type engine interface {
	Find(token string) (b []byte, found bool, err error)
	Save(token string, b []byte, expiry time.Time) error
	Delete(token string) error
}

var _ engine = (*memstore.MemStore)(nil)

// TestEngineInterface: code written against the original engine interface
// works unchanged with this store.
func TestEngineInterface(t *testing.T) {
	store := memstore.New(time.Minute)
	t.Cleanup(func() { store.Close() })
	var e engine = store

	if err := e.Save("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b, found, err := e.Find("token")
	if err != nil || !found || string(b) != "data" {
		t.Fatalf("Find after Save = (%q, %v, %v), want (\"data\", true, nil)", b, found, err)
	}
	if err := e.Save("token", []byte("past"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := e.Find("token"); found {
		t.Fatal("Save with a past expiry left the session findable")
	}
	// A deleted token stays deleted until the expiry its session had: the
	// engine's session manager gives every session a new token.
	if err := e.Save("token", []byte("again"), time.Now().Add(time.Hour)); !errors.Is(err, memstore.ErrDeleted) {
		t.Fatalf("Save of a token deleted by a past expiry = %v; want ErrDeleted", err)
	}
	if err := e.Save("token2", []byte("again"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.Delete("token2"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := e.Find("token2"); found {
		t.Fatal("Find after Delete found the session")
	}
	if err := e.Delete("never-saved"); err != nil {
		t.Fatalf("Delete of an unknown token: %v", err)
	}
}
