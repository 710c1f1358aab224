// SPDX-License-Identifier: MIT

package memstore_test

import (
	"fmt"
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
