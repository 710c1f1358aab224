// SPDX-License-Identifier: MIT

package integration

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	scsmemstore "github.com/alexedwards/scs/v2/memstore"
	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/internal/testchild"
	"github.com/golangcollege/memstore/storetest"
)

// keepsLogout says, for each store of stores, whether a Commit of a token
// after its Delete is refused: the column "keeps a logout" of the table of
// stores in docs/comparison.md. TestStoresKeepALogout keeps it true.
var keepsLogout = map[string]bool{
	"memstore":         true,
	"memstore-durable": true,
}

// TestStoresKeepALogout commits, deletes and commits again one token in
// every store compared, and checks which refuse the second Commit, as
// keepsLogout says.
func TestStoresKeepALogout(t *testing.T) {
	for _, k := range stores {
		t.Run("store="+k.name, func(t *testing.T) {
			t.Parallel()
			s := k.open(t)(t)
			tok := strings.Repeat("L", 43)
			live := time.Now().Add(time.Hour)
			if err := s.Commit(tok, []byte("logged in"), live); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(tok); err != nil {
				t.Fatal(err)
			}
			err := s.Commit(tok, []byte("brought back"), live)
			_, found, _ := s.Find(tok)
			s.Delete(tok) // tidy a shared server
			refused := err != nil && !found
			if refused != keepsLogout[k.name] {
				t.Errorf("Commit after Delete = %v, then found %v; keepsLogout says %v", err, found, keepsLogout[k.name])
			}
			if keepsLogout[k.name] && !errors.Is(err, memstore.ErrDeleted) {
				t.Errorf("Commit after Delete = %v; want ErrDeleted", err)
			}
		})
	}
}

// TestHardening runs storetest.RunHardening over this store, on the real
// clock, with and without Open.
func TestHardening(t *testing.T) {
	for _, name := range []string{"memstore", "memstore-durable"} {
		t.Run("store="+name, func(t *testing.T) {
			k, _ := storeNamed(name)
			storetest.RunHardening(t, k.open(t))
		})
	}
}

// hardeningChildEnv names the store TestHardeningChild checks.
const hardeningChildEnv = "MEMSTORE_HARDENING_CHILD"

// TestHardeningChild runs storetest.RunHardening over the store named by
// $MEMSTORE_HARDENING_CHILD. It runs only in the child process of
// TestScsMemstoreFailsHardening.
func TestHardeningChild(t *testing.T) {
	name := os.Getenv(hardeningChildEnv)
	if name == "" {
		t.Skip("runs only as a child process of TestScsMemstoreFailsHardening")
	}
	k, ok := storeNamed(name)
	if !ok {
		t.Fatalf("no store named %q", name)
	}
	storetest.RunHardening(t, k.open(t))
}

// TestScsMemstoreFailsHardening runs storetest.RunHardening over scs's own
// memstore, in a child process, and checks that it fails: the rule is not
// one a store passes by doing nothing.
func TestScsMemstoreFailsHardening(t *testing.T) {
	if os.Getenv(hardeningChildEnv) != "" {
		t.Skip("in a child process")
	}
	c := testchild.Run("^TestHardeningChild$", hardeningChildEnv+"=scs-memstore")
	failed := c.Subtests("TestHardeningChild", "FAIL")
	if c.Err == nil || !slices.Contains(failed, "deleted-session-stays-deleted") {
		t.Fatalf("RunHardening over scs's memstore: exit %v, failed %q; want deleted-session-stays-deleted failed\n%s", c.Err, failed, c.Output)
	}
}

// logoutApp is a small scs application over one store, with IdleTimeout
// set, so that every request commits its session: /visit starts an
// anonymous session, /login renews the token and puts the user in,
// /logout destroys the session, /whoami writes the user, and /slow loads
// the session, says so on loaded, and waits for release before it ends.
type logoutApp struct {
	*httptest.Server
	sm      *scs.SessionManager
	loaded  chan struct{}
	release chan struct{}
}

func newLogoutApp(t *testing.T, store scs.Store) *logoutApp {
	a := &logoutApp{sm: scs.New(), loaded: make(chan struct{}), release: make(chan struct{})}
	a.sm.Store = store
	a.sm.IdleTimeout = 30 * time.Minute
	// A refused Commit is a session that has ended, not a server fault: the
	// request is answered as one without a session, and no cookie is set.
	a.sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, memstore.ErrDeleted) {
			http.Error(w, "your session has ended: log in again", http.StatusUnauthorized)
			return
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/visit", func(w http.ResponseWriter, r *http.Request) {
		a.sm.Put(r.Context(), "visits", a.sm.GetInt(r.Context(), "visits")+1)
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		if err := a.sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		a.sm.Put(r.Context(), "user", "alice")
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := a.sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, a.sm.GetString(r.Context(), "user"))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		a.sm.GetString(r.Context(), "user")
		a.loaded <- struct{}{}
		<-a.release // writes nothing: LoadAndSave commits once it returns
	})
	a.Server = httptest.NewServer(a.sm.LoadAndSave(mux))
	t.Cleanup(a.Close)
	return a
}

// get requests path with the session cookie token, if not "", and returns
// the response, its body read.
func (a *logoutApp) get(t *testing.T, path, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: a.sm.Cookie.Name, Value: token})
	}
	resp, err := a.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// sessionCookie returns the session token resp sets, and whether it sets
// one ("" for a cookie that ends the session).
func (a *logoutApp) sessionCookie(resp *http.Response) (string, bool) {
	for _, c := range resp.Cookies() {
		if c.Name == a.sm.Cookie.Name {
			return c.Value, true
		}
	}
	return "", false
}

// slowly starts /slow with token and returns once it has loaded the
// session; finish releases it and returns its response.
func (a *logoutApp) slowly(t *testing.T, token string) (finish func() *http.Response) {
	done := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/slow", nil)
		req.AddCookie(&http.Cookie{Name: a.sm.Cookie.Name, Value: token})
		resp, err := a.Client().Do(req)
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		resp.Body.Close()
		done <- resp
	}()
	<-a.loaded
	return func() *http.Response {
		close(a.release)
		return <-done
	}
}

// logoutStores are the two stores the races run over: scs's own memstore,
// which shows that the race is real, and this one.
var logoutStores = []struct {
	name       string
	new        func() scs.Store
	keepsToken bool // a token deleted in a race stays deleted
}{
	{"scs-memstore", func() scs.Store { return scsmemstore.New() }, false},
	{"memstore", func() scs.Store { return memstore.New(time.Minute) }, true},
}

// TestLogoutRace runs, through scs's LoadAndSave over real HTTP, a request
// that loaded the session before /logout and ends after it.
func TestLogoutRace(t *testing.T) {
	for _, s := range logoutStores {
		t.Run("store="+s.name, func(t *testing.T) {
			t.Parallel()
			store := s.new()
			a := newLogoutApp(t, store)
			resp, _ := a.get(t, "/login", "")
			token, ok := a.sessionCookie(resp)
			if !ok || token == "" {
				t.Fatalf("/login set no session cookie: %v", resp.Header)
			}
			finish := a.slowly(t, token)
			if resp, _ := a.get(t, "/logout", token); resp.StatusCode != http.StatusOK {
				t.Fatalf("/logout: %s", resp.Status)
			}
			slow := finish()
			if slow == nil {
				t.FailNow()
			}
			_, found, _ := store.Find(token)
			_, user := a.get(t, "/whoami", token)
			back, set := a.sessionCookie(slow)
			if !s.keepsToken {
				// The race is real: the session is back, logged in, and the
				// slow request set its cookie again.
				if !found || user != "alice" || back != token {
					t.Fatalf("after the slow request: found %v, /whoami %q, its cookie %q (set %v); want the logged-out session back, as scs's memstore writes what it is given", found, user, back, set)
				}
				return
			}
			if found || user != "" || set || slow.StatusCode != http.StatusUnauthorized {
				t.Fatalf("after the slow request: found %v, /whoami %q, its cookie %q (set %v), its status %s; want the session gone, no cookie, 401", found, user, back, set, slow.Status)
			}
		})
	}
}

// TestRenewTokenRace runs a request that loaded an anonymous session
// before /login renewed its token, and ends after it: the user must stay
// logged in under the new token, and the old one stay dead.
func TestRenewTokenRace(t *testing.T) {
	for _, s := range logoutStores {
		t.Run("store="+s.name, func(t *testing.T) {
			t.Parallel()
			store := s.new()
			a := newLogoutApp(t, store)
			resp, _ := a.get(t, "/visit", "")
			old, ok := a.sessionCookie(resp)
			if !ok || old == "" {
				t.Fatalf("/visit set no session cookie: %v", resp.Header)
			}
			finish := a.slowly(t, old)
			resp, _ = a.get(t, "/login", old)
			renewed, _ := a.sessionCookie(resp)
			if renewed == "" || renewed == old {
				t.Fatalf("/login set the cookie %q; want a new token", renewed)
			}
			slow := finish()
			if slow == nil {
				t.FailNow()
			}
			_, found, _ := store.Find(old)
			back, set := a.sessionCookie(slow)
			if _, user := a.get(t, "/whoami", renewed); user != "alice" {
				t.Fatalf("/whoami with the new token = %q; want alice", user)
			}
			if !s.keepsToken {
				// The race is real: the old token is back, and the slow
				// response sets it again, over the new cookie: the user who
				// just logged in is logged out.
				if !found || back != old {
					t.Fatalf("after the slow request: old token found %v, its cookie %q (set %v); want the old token back, as scs's memstore writes what it is given", found, back, set)
				}
				return
			}
			if found || set || slow.StatusCode != http.StatusUnauthorized {
				t.Fatalf("after the slow request: old token found %v, its cookie %q (set %v), status %s; want the old token dead, no cookie, 401", found, back, set, slow.Status)
			}
		})
	}
}
