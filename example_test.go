// SPDX-License-Identifier: MIT

package memstore_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/golangcollege/memstore"
)

// With scs v2 the store is one line:
//
//	sessionManager := scs.New()
//	sessionManager.Store = memstore.New(time.Minute)
//
// scs then calls Commit, Find and Delete itself. Called directly:
func Example() {
	store := memstore.New(time.Minute) // sweep expired sessions every minute
	defer store.Close()

	store.Commit("token", []byte("encoded session"), time.Now().Add(time.Hour))

	b, found, _ := store.Find("token")
	fmt.Printf("%s %v\n", b, found)

	store.Delete("token")
	_, found, _ = store.Find("token")
	fmt.Println(found)
	// Output:
	// encoded session true
	// false
}

// The original engine API: New, Save, Find, Delete.
func ExampleMemStore_Save() {
	engine := memstore.New(5 * time.Minute)
	defer engine.Close()

	engine.Save("token", []byte("data"), time.Now().Add(24*time.Hour))
	b, found, _ := engine.Find("token")
	fmt.Printf("%s %v\n", b, found)
	// Output: data true
}

// An expiry in the past deletes the session rather than storing it.
func ExampleMemStore_Commit_expired() {
	store := memstore.New(0) // no janitor
	store.Commit("token", []byte("data"), time.Now().Add(time.Hour))
	store.Commit("token", []byte("data"), time.Now().Add(-time.Second))
	_, found, _ := store.Find("token")
	fmt.Println(found, store.Len())
	// Output: false 0
}

// Find returns the store's own slice: copy it before changing it.
func ExampleMemStore_Find() {
	store := memstore.New(0)
	store.Commit("token", []byte("hello"), time.Now().Add(time.Hour))

	b, _, _ := store.Find("token")
	mine := append([]byte(nil), b...) // a copy the caller may modify
	mine[0] = 'J'

	again, _, _ := store.Find("token")
	fmt.Printf("%s %s\n", mine, again)
	// Output: Jello hello
}

func ExampleMemStore_All() {
	store := memstore.New(0)
	store.Commit("alice", []byte("a"), time.Now().Add(time.Hour))
	store.Commit("bob", []byte("b"), time.Now().Add(time.Hour))

	all, _ := store.All()
	fmt.Println(len(all), string(all["alice"]), string(all["bob"]))
	// Output: 2 a b
}

// A store from Open keeps its sessions in a directory, so that a restart or
// a crash logs nobody out.
func ExampleOpen() {
	// The directory holds the sessions, which are credentials, so Open
	// refuses one that other users can reach: os.MkdirTemp makes it with
	// mode 0700. Open creates a missing directory with that mode itself.
	dir, err := os.MkdirTemp("", "memstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := memstore.Open(dir, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	store.Commit("alice", []byte("cart: 3 items"), time.Now().Add(time.Hour))
	store.Commit("bob", []byte("cart: empty"), time.Now().Add(time.Hour))
	// Delete is on disk when it returns: bob stays logged out.
	store.Delete("bob")
	// Close puts the Commits on disk and releases the directory.
	if err := store.Close(); err != nil {
		log.Fatal(err)
	}

	// The next start, or the first after a crash.
	store, err = memstore.Open(dir, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	b, found, _ := store.Find("alice")
	fmt.Printf("%s %v\n", b, found)
	_, found, _ = store.Find("bob")
	fmt.Println(found)
	// Output:
	// cart: 3 items true
	// false
}

// Under a byte cap a store makes room for new sessions by evicting those
// nearest their expiry, and refuses a session larger than the whole cap.
func ExampleWithMaxBytes() {
	store := memstore.New(time.Minute, memstore.WithMaxBytes(1<<20)) // 1 MiB
	defer store.Close()

	data := make([]byte, 1000)
	for i := range 5000 { // 5 MB of sessions, each expiring a second after the one before
		expiry := time.Now().Add(time.Hour + time.Duration(i)*time.Second)
		if err := store.Commit(fmt.Sprint("token", i), data, expiry); err != nil {
			log.Fatal(err)
		}
	}
	st := store.Stats()
	fmt.Println("within the cap:", st.Bytes <= st.MaxBytes, store.Len() < 1000)
	_, found, _ := store.Find("token4999")
	fmt.Println("the last session committed:", found)

	err := store.Commit("huge", make([]byte, 2<<20), time.Now().Add(time.Hour))
	fmt.Println(errors.Is(err, memstore.ErrTooLarge))
	// Output:
	// within the cap: true true
	// the last session committed: true
	// true
}

// Sessions saved at shutdown and restored at start: a restart logs nobody out.
func ExampleMemStore_WriteFile() {
	dir, err := os.MkdirTemp("", "memstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "sessions.snapshot")

	// At start. A missing file only means that nothing was saved yet; a bad
	// one is worth stopping for rather than logging every user out.
	store := memstore.New(time.Minute)
	if err := store.ReadFile(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Fatal(err)
	}
	store.Commit("token", []byte("alice"), time.Now().Add(time.Hour))

	// At shutdown, once the HTTP server has shut down.
	store.Close()
	if err := store.WriteFile(name); err != nil {
		log.Fatal(err)
	}

	// The next start.
	next := memstore.New(time.Minute)
	defer next.Close()
	if err := next.ReadFile(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Fatal(err)
	}
	b, found, _ := next.Find("token")
	fmt.Printf("%s %v\n", b, found)
	// Output: alice true
}
