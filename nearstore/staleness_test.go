// SPDX-License-Identifier: MIT

package nearstore

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

var stalenessTime = flag.Duration("staleness.time", 2*time.Second, "how long TestStalenessUnderLoad runs its load")

// TestStalenessUnderLoad measures how long instance B keeps giving a
// session's old data after a write on instance A returned, under 50
// clients on each instance over real HTTP through LoadAndSave: on A each
// client writes its session in a loop, on B another reads it in a loop.
// For each write, the window is how long after it returned a read on B
// began that still gave older data (0 if none did). It fails if a window
// exceeds the heartbeat timeout, and logs the percentiles.
func TestStalenessUnderLoad(t *testing.T) {
	srv := startRedis(t)
	_, ha := app(newStore(t, srv))
	storeB := newStore(t, srv)
	_, hb := app(storeB)
	a, b := httptest.NewServer(ha), httptest.NewServer(hb)
	defer a.Close()
	defer b.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: 200}
	defer transport.CloseIdleConnections()

	const clients = 50
	type read struct {
		began time.Time
		v     int
	}
	writes := make([][]time.Time, clients) // writes[i][k]: when write k+1 of session i returned
	reads := make([][]read, clients)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		user := newBrowser(transport)
		httpGet(t, user, a.URL+"/put?v=0")
		wg.Add(2)
		go func() { // the writer, on A
			defer wg.Done()
			for k := 1; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := tryGet(user, a.URL+"/put?v="+strconv.Itoa(k)); err != nil {
					t.Error(err)
					return
				}
				writes[i] = append(writes[i], time.Now())
				time.Sleep(time.Millisecond)
			}
		}()
		go func() { // the reader, on B
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				body, err := tryGet(user, b.URL+"/get")
				if err != nil {
					t.Error(err)
					return
				}
				v, err := strconv.Atoi(body)
				if err != nil {
					t.Errorf("B's /get: %v", err)
					return
				}
				reads[i] = append(reads[i], read{began, v})
			}
		}()
	}
	time.Sleep(*stalenessTime)
	close(stop)
	wg.Wait()

	var windows []time.Duration
	for i := range clients {
		for k, done := range writes[i] {
			var w time.Duration
			for _, r := range reads[i] {
				if r.began.After(done) && r.v < k+1 {
					w = max(w, r.began.Sub(done))
				}
			}
			windows = append(windows, w)
		}
	}
	if len(windows) == 0 {
		t.Fatal("no write completed")
	}
	slices.Sort(windows)
	pct := func(p float64) time.Duration { return windows[min(len(windows)-1, int(p*float64(len(windows))))] }
	nreads := 0
	for _, r := range reads {
		nreads += len(r)
	}
	st := storeB.Stats()
	t.Logf("%d writes on A, %d reads on B (%d from B's local copy, %d from Redis); staleness after a write: p50 %v, p99 %v, p99.9 %v, max %v",
		len(windows), nreads, st.Hits, st.Misses, pct(0.5), pct(0.99), pct(0.999), windows[len(windows)-1])
	if worst := windows[len(windows)-1]; worst > DefaultHeartbeat {
		t.Errorf("B gave old data %v after a write on A returned; want at most the heartbeat timeout, %v", worst, DefaultHeartbeat)
	}
}
