// SPDX-License-Identifier: MIT

package integration

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/golangcollege/memstore/internal/findwaits"
)

// The side-by-side benchmarks run workloads that need more than the storetest
// kit's (the kit's own run in BenchmarkStores, in kit_test.go) against the
// stores of stores_test.go that live in this process's memory, as
// sub-benchmarks named store=memstore (this module's store),
// store=scs-memstore (scs v2's own memstore) and store=go-cache (the original
// design), so that benchstat lines them up from one run: the heap per
// session, a request through scs's LoadAndSave, and the wait of a Find
// during a sweep.
//
//	go test -run '^$' -bench . -count 6 > new.txt && benchstat -col /store new.txt

// benchStores runs bench once per store that lives in this process's memory, as a sub-benchmark named
// store=NAME, with a store that has no janitor.
func benchStores(b *testing.B, bench func(b *testing.B, s store)) {
	for _, c := range inProcessStores() {
		b.Run("store="+c.name, func(b *testing.B) {
			s, _, closeStore := c.inProcess(b, 0)
			defer closeStore()
			bench(b, s)
		})
	}
}

// encode returns the session scs's own GobCodec makes of values, expiring in
// a day: a fresh slice, with the capacity the codec's bytes.Buffer grew to.
func encode(values map[string]any) []byte {
	b, err := scs.GobCodec{}.Encode(time.Now().Add(24*time.Hour).UTC(), values)
	if err != nil {
		panic(err)
	}
	return b
}

// sessionShapes are the sessions that the heap benchmark stores: the
// example's (149 bytes in a 256-byte array) and a logged-in user's.
var sessionShapes = []struct {
	name   string
	values map[string]any
}{
	{"hello", map[string]any{"message": "Hello world!"}},
	{"login", map[string]any{
		"userID": 4217,
		"flash":  "Your changes were saved.",
		"csrf":   "Q2hhbmdlIHRoaXMgdG9rZW4gb24gZXZlcnkgbG9naW4",
	}},
}

// payload is a real scs session, the example's, for the workloads that need
// one: every store is handed the same slice.
var payload = encode(map[string]any{"message": "Hello world!"})

// tokens returns n distinct tokens as long as scs's (43 characters):
// token(0) to token(n-1).
func tokens(n int) []string {
	t := make([]string, n)
	for i := range t {
		t[i] = token(i)
	}
	return t
}

// token returns the i-th of the benchmarks' tokens, as long as scs's.
func token(i int) string {
	return fmt.Sprintf("%043d", i)
}

// newToken returns a token made as scs makes them: 32 random bytes, base64.
func newToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// fill commits payload under every token in toks, expiring at expiry.
func fill(b *testing.B, s store, toks []string, expiry time.Time) {
	b.Helper()
	for _, tok := range toks {
		if err := s.Commit(tok, payload, expiry); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeapPerSession reports the Go heap that each stored session costs
// (B/session: token, data and the store's share of its map), measured with
// runtime.ReadMemStats after runtime.GC around committing 100,000 sessions
// whose data scs's GobCodec encoded, one fresh slice each, as scs hands them
// over.
func BenchmarkHeapPerSession(b *testing.B) {
	const n = 100_000
	for _, shape := range sessionShapes {
		sample := encode(shape.values)
		for _, c := range inProcessStores() {
			b.Run(fmt.Sprintf("session=%s/store=%s", shape.name, c.name), func(b *testing.B) {
				b.ReportMetric(float64(len(sample)), "data-B")
				b.ReportMetric(float64(cap(sample)), "codec-cap-B")
				var total float64
				for range b.N {
					total += heapPerSession(b, c, shape.values, n)
				}
				b.ReportMetric(total/float64(b.N), "B/session")
			})
		}
	}
}

// heapPerSession commits n sessions of values to a new store of kind c and
// returns how much the live heap grew per session.
//
// The timer keeps running: with it stopped the framework would see no time
// pass and raise b.N without bound.
func heapPerSession(b *testing.B, c storeKind, values map[string]any, n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, _, closeStore := c.inProcess(b, 0)
	expiry := time.Now().Add(time.Hour)
	for range n {
		if err := s.Commit(newToken(), encode(values), expiry); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	closeStore()
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// BenchmarkLoadAndSave: what a user's browser sees, one request that puts a
// value in the session and one that gets it back, through scs's LoadAndSave
// middleware with the store behind it (ServeHTTP, no network), for 10,000
// returning users drawn at random, each token parsed from its cookie.
func BenchmarkLoadAndSave(b *testing.B) {
	const users = 10_000
	benchStores(b, func(b *testing.B, s store) {
		sm := scs.New()
		sm.Store = s
		mux := http.NewServeMux()
		mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "message", "Hello world!")
		})
		mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, sm.GetString(r.Context(), "message"))
		})
		h := sm.LoadAndSave(mux)
		serve := func(path string, cookie *http.Cookie) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			if cookie != nil {
				req.AddCookie(cookie)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}

		cookies := make([]*http.Cookie, users)
		for i := range cookies {
			rec := serve("/put", nil)
			cookies[i] = rec.Result().Cookies()[0]
			cookies[i] = &http.Cookie{Name: cookies[i].Name, Value: cookies[i].Value}
		}
		if got := serve("/get", cookies[0]).Body.String(); got != "Hello world!" {
			b.Fatalf("/get served %q", got)
		}
		order := make([]int, 1<<16) // returning users come in no order
		for i := range order {
			order[i] = mrand.IntN(users)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c := cookies[order[i%len(order)]]
			serve("/put", c)
			serve("/get", c)
		}
	})
}

// sweepWindow is how long BenchmarkSweepFindWait measures Finds for in
// every store: the same window for each, so that their longest waits, whose
// share of the machine's own noise grows with the window, compare.
var sweepWindow = flag.Duration("sweep-window", 5*time.Second,
	"how long BenchmarkSweepFindWait measures Finds in every store, sweeping and idle; a sweep that runs longer lengthens its store's window")

// BenchmarkSweepFindWait measures how long Finds wait while each store's own
// janitor sweeps 1,000,000 sessions of which half expire shortly after the
// store is full, and how long they wait in the same store, as full, with no
// janitor: the floor that the machine, the scheduler and the collector set.
// Both are measured over the same window, -sweep-window from when the
// store is full (longer where a sweep is not done by then), for every
// store, with fresh token strings drawn at random among the sessions that
// stay. Metrics, in microseconds: max-µs-sweep and p99.99-µs-sweep, with
// the janitor; max-µs-idle and p99.99-µs-idle, without; their ratios;
// window-s, the window in seconds; sweep-s, how long the sweep took; and
// Mfinds-sweep, the millions of Finds measured with the janitor.
func BenchmarkSweepFindWait(b *testing.B) {
	const n = 1_000_000
	const cleanup = 100 * time.Millisecond // every store's janitor interval
	toks := tokens(n)
	probe := freshTokens(toks[:1000]) // what the Finds ask for: sessions that stay
	for _, c := range inProcessStores() {
		b.Run("store="+c.name, func(b *testing.B) {
			if c.removesWithoutJanitor != "" {
				b.Skipf("no store without a janitor to compare with: %s", c.removesWithoutJanitor)
			}
			for range b.N {
				sweeping, window, swept := sweepWaits(b, c, toks, probe, cleanup, *sweepWindow)
				idle := idleWaits(b, c, toks, probe, window)
				sweeping.Report(b, "sweep")
				idle.Report(b, "idle")
				b.ReportMetric(float64(sweeping.Longest)/float64(idle.Longest), "max-ratio")
				b.ReportMetric(float64(sweeping.P9999)/float64(idle.P9999), "p99.99-ratio")
				b.ReportMetric(window.Seconds(), "window-s")
				b.ReportMetric(swept.Seconds(), "sweep-s")
				b.ReportMetric(float64(sweeping.Calls)/1e6, "Mfinds-sweep")
			}
		})
	}
}

// freshTokens returns copies of tokens of toks drawn at random, at least
// 65,536 and as many as toks holds, each a string of its own as a request
// parses from its cookie, in the order a workload takes them: handed back
// the very string it holds, a Go map compares keys by pointer and never
// reads their bytes.
func freshTokens(toks []string) []string {
	probe := make([]string, max(len(toks), 1<<16))
	for i := range probe {
		probe[i] = strings.Clone(toks[mrand.IntN(len(toks))])
	}
	return probe
}

// sweepWaits measures Finds of probe in a full store of kind c with a janitor
// every cleanup, from when it is full until the janitor has removed the
// expired half and at least window has passed, and returns what they
// waited, how long they were measured and how long the sweep took. It
// returns once the store's janitor has stopped, so that it cannot disturb
// what is measured next.
func sweepWaits(b *testing.B, c storeKind, toks, probe []string, cleanup, window time.Duration) (waits findwaits.Waits, measured, swept time.Duration) {
	goroutines := runtime.NumGoroutine()
	func() {
		s, held, closeStore, _ := fullStore(b, c, cleanup, toks)
		defer closeStore()
		start := time.Now()
		waits = findwaits.Measure(s, probe, func() {
			for held() > len(toks)/2 {
				time.Sleep(time.Millisecond)
			}
			swept = time.Since(start)
			time.Sleep(time.Until(start.Add(window)))
		})
		measured = time.Since(start)
	}()
	awaitDropped(b, c, goroutines)
	return waits, measured, swept
}

// awaitDropped returns once a store of kind c, closed and dropped, is gone:
// once no more goroutines run than goroutines, the count from before it was
// opened (go-cache's janitor stops only once its Cache has been collected),
// and the heap has been collected, so that it cannot disturb what is
// measured next.
func awaitDropped(b *testing.B, c storeKind, goroutines int) {
	for deadline := time.Now().Add(30 * time.Second); runtime.NumGoroutine() > goroutines; {
		if time.Now().After(deadline) {
			b.Fatalf("%s: the janitor is still running 30s after the store was dropped", c.name)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
}

// idleWaits measures Finds of probe for window in a full store of kind c with
// no janitor, once the expiring half has expired.
func idleWaits(b *testing.B, c storeKind, toks, probe []string, window time.Duration) findwaits.Waits {
	s, held, closeStore, expiry := fullStore(b, c, 0, toks)
	defer runtime.GC()
	defer closeStore()
	time.Sleep(time.Until(expiry))
	waits := findwaits.Measure(s, probe, func() {
		for deadline := time.Now().Add(window); time.Now().Before(deadline); {
			held() // as sweepWaits does
			time.Sleep(time.Millisecond)
		}
	})
	if got := held(); got != len(toks) {
		b.Fatalf("a store with no janitor holds %d sessions, want %d", got, len(toks))
	}
	return waits
}

// fullStore opens a store of kind c with a janitor every cleanup (0: none)
// and fills it with toks: the first half live for an hour, the second half
// expiring together shortly after the last is committed. It returns once the
// heap is collected (so that no collection runs during a measurement) and
// before that expiry. When a loaded machine filled it too slowly for that, it
// tries again with more time to spare.
func fullStore(b *testing.B, c storeKind, cleanup time.Duration, toks []string) (s store, held func() int, closeStore func(), expiry time.Time) {
	half := len(toks) / 2
	for attempt := 1; ; attempt++ {
		s, held, closeStore = c.inProcess(b, cleanup)
		start := time.Now()
		fill(b, s, toks[:half], start.Add(time.Hour))
		first := time.Since(start)
		// The second half takes longer than the first (a bigger map, more
		// to collect, a janitor walking more), but not three times as long.
		expiry = time.Now().Add(time.Duration(3*attempt)*first + time.Duration(attempt)*500*time.Millisecond)
		fill(b, s, toks[half:], expiry)
		runtime.GC()
		if time.Until(expiry) > 10*time.Millisecond {
			return s, held, closeStore, expiry
		}
		closeStore()
		if attempt == 3 {
			b.Fatalf("%s: sessions expired before the store was full, %d times (first half: %v)", c.name, attempt, first)
		}
		b.Logf("%s: sessions expired before the store was full (first half: %v); trying again", c.name, first)
	}
}

// TestInProcessStores checks the machinery the benchmarks stand on: each store
// compared keeps, expires and deletes sessions as scs expects, and its held
// count sees what it holds, expired sessions included, until a sweep.
func TestInProcessStores(t *testing.T) {
	for _, c := range inProcessStores() {
		t.Run("store="+c.name, func(t *testing.T) {
			s, held, closeStore := c.inProcess(t, 0)
			defer closeStore()
			if err := s.Commit("live", payload, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit("short", payload, time.Now().Add(200*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if got, found, err := s.Find("live"); err != nil || !found || string(got) != string(payload) {
				t.Fatalf("Find(live) = (%d bytes, %v, %v), want the payload", len(got), found, err)
			}
			if n := held(); n != 2 {
				t.Fatalf("held() = %d, want 2", n)
			}
			waitFor(t, 10*time.Second, "the short session expired", func() bool {
				_, found, _ := s.Find("short")
				return !found
			})
			if n := held(); n != 2 {
				t.Fatalf("held() = %d with no janitor, want 2 (expired included)", n)
			}
			if err := s.Delete("live"); err != nil {
				t.Fatal(err)
			}
			if _, found, _ := s.Find("live"); found {
				t.Fatal("Find after Delete found the session")
			}
			if n := held(); n != 1 {
				t.Fatalf("held() = %d after Delete, want 1", n)
			}
		})
	}
}

// TestInProcessStoresSweep: each store's own janitor removes expired sessions,
// which held sees, and close stops it (the sweep benchmark waits for both).
func TestInProcessStoresSweep(t *testing.T) {
	for _, c := range inProcessStores() {
		t.Run("store="+c.name, func(t *testing.T) {
			s, held, closeStore := c.inProcess(t, 5*time.Millisecond)
			s.Commit("live", payload, time.Now().Add(time.Hour))
			for i := range 100 {
				s.Commit(fmt.Sprint("short-", i), payload, time.Now().Add(200*time.Millisecond))
			}
			waitFor(t, 30*time.Second, "the janitor removed the expired sessions", func() bool {
				return held() == 1
			})
			closeStore()
			if _, found, _ := s.Find("live"); !found {
				t.Fatal("the janitor removed a live session")
			}
		})
	}
}
