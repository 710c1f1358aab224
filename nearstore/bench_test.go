// SPDX-License-Identifier: MIT

package nearstore

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/golangcollege/memstore"
	"github.com/gomodule/redigo/redis"
)

// BenchmarkFind compares a Find of a session held locally with the same
// Find on a plain memstore.MemStore.
func BenchmarkFind(b *testing.B) {
	data := make([]byte, 157) // a real scs session's size
	tok := newToken()
	b.Run("store=memstore", func(b *testing.B) {
		m := memstore.New(time.Minute)
		defer m.Close()
		m.Commit(tok, data, time.Now().Add(time.Hour))
		b.ReportAllocs()
		for b.Loop() {
			m.Find(tok)
		}
	})
	b.Run("store=nearstore", func(b *testing.B) {
		srv := startRedis(b)
		s := newStore(b, srv)
		s.Commit(tok, data, time.Now().Add(time.Hour))
		holdLocally(b, s, tok)
		b.ReportAllocs()
		for b.Loop() {
			s.Find(tok)
		}
		if st := s.Stats(); st.Misses > 1 {
			b.Errorf("%d Finds read Redis; want the local copy to answer", st.Misses)
		}
	})
}

// BenchmarkRequest measures a request through scs's LoadAndSave (the
// handler called directly, without HTTP) on redisstore and on this store,
// one that only reads its session and one that changes it.
func BenchmarkRequest(b *testing.B) {
	srv := startRedis(b)
	stores := []struct {
		name string
		make func(b *testing.B) scs.Store
	}{
		{"redisstore", func(b *testing.B) scs.Store {
			pool := &redis.Pool{MaxIdle: 16, Dial: func() (redis.Conn, error) { return redis.Dial("tcp", srv.addr()) }}
			b.Cleanup(func() { pool.Close() })
			return redisstore.New(pool)
		}},
		{"nearstore", func(b *testing.B) scs.Store { return newStore(b, srv) }},
	}
	for _, st := range stores {
		for _, path := range []string{"/get", "/put?v=x"} {
			name := map[string]string{"/get": "read", "/put?v=x": "commit"}[path]
			b.Run("store="+st.name+"/"+name, func(b *testing.B) {
				store := st.make(b)
				_, h := app(store)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/put?v=x", nil))
				cookie := w.Result().Cookies()[0]
				if s, ok := store.(*Store); ok {
					holdLocally(b, s, cookie.Value)
				}
				r := httptest.NewRequest("GET", path, nil)
				r.AddCookie(cookie)
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code != http.StatusOK {
						b.Fatalf("%s: %d %s", path, w.Code, w.Body)
					}
				}
			})
		}
	}
}
