// SPDX-License-Identifier: MIT

// Command scsv2 is a program written against scs v2's own memstore package.
// TestScsV2MemstoreDropIn runs it as it is, and with its import path changed
// to this module's memstore, and compares what the two print.
package main

import (
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
)

func main() {
	// The store's own methods.
	store := memstore.NewWithCleanupInterval(time.Second)
	defer store.StopCleanup()
	expiry := time.Now().Add(time.Hour)
	check(store.Commit("alice", []byte("a"), expiry))
	check(store.Commit("bob", []byte("b"), expiry))
	check(store.Commit("carol", []byte("c"), time.Now().Add(-time.Second)))
	b, found, err := store.Find("alice")
	fmt.Printf("Find(alice) = %s, %v, %v\n", b, found, err)
	_, found, err = store.Find("carol")
	fmt.Printf("Find(carol), committed with a past expiry, found = %v, %v\n", found, err)
	check(store.Delete("bob"))
	_, found, _ = store.Find("bob")
	fmt.Printf("Find(bob), deleted, found = %v\n", found)
	all, err := store.All()
	fmt.Printf("All() = %q, %v\n", slices.Sorted(maps.Keys(all)), err)

	// As scs's session store, through requests that count a visitor's
	// visits in their session.
	sessions := memstore.New()
	defer sessions.StopCleanup()
	sessionManager := scs.New()
	sessionManager.Store = sessions
	visits := func(w http.ResponseWriter, r *http.Request) {
		n := sessionManager.GetInt(r.Context(), "visits") + 1
		sessionManager.Put(r.Context(), "visits", n)
		fmt.Fprint(w, n)
	}
	srv := httptest.NewServer(sessionManager.LoadAndSave(http.HandlerFunc(visits)))
	defer srv.Close()
	jar, err := cookiejar.New(nil)
	check(err)
	client := &http.Client{Jar: jar}
	for range 3 {
		fmt.Printf("visit: %s\n", get(client, srv.URL))
	}
	all, err = sessions.All()
	fmt.Printf("sessions held = %d, %v\n", len(all), err)
}

// get returns the body of the response to a GET of url.
func get(client *http.Client, url string) string {
	resp, err := client.Get(url)
	check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	check(err)
	return string(body)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
