// SPDX-License-Identifier: MIT

package storetest

import (
	"context"
	"testing"
	"time"
)

// Store is the method set of scs v2's Store interface
// (github.com/alexedwards/scs/v2.Store), repeated here so that any scs store
// satisfies it without importing this package or scs.
//
// Run and Bench also use, when a store has them, the methods of scs's
// optional interfaces, found by type assertion:
//
//	// IterableStore
//	All() (map[string][]byte, error)
//	// CtxStore
//	FindCtx(ctx context.Context, token string) (b []byte, found bool, err error)
//	CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) (err error)
//	DeleteCtx(ctx context.Context, token string) (err error)
//	// IterableCtxStore
//	AllCtx(ctx context.Context) (map[string][]byte, error)
type Store interface {
	// Delete removes the session token and its data. Deleting a token that
	// does not exist is a no-op that returns nil.
	Delete(token string) (err error)

	// Find returns the data of the session token. A token that is unknown,
	// expired, tampered with or malformed gives found == false and a nil
	// error; the error is for system errors only.
	Find(token string) (b []byte, found bool, err error)

	// Commit stores the session token with its data until expiry, replacing
	// the data and expiry of a token that already exists.
	Commit(token string, b []byte, expiry time.Time) (err error)
}

// MakeStore returns a fresh store for one subtest of Run or one
// sub-benchmark of Bench, whose t or b it is given. A store that needs
// closing, or a connection that needs releasing, registers that with
// tb.Cleanup: it then runs when that subtest or sub-benchmark ends, after the
// kit has deleted the sessions it committed. MakeStore may fail tb (with
// tb.Fatal) when it cannot make a store.
//
// One function thus serves both Run and Bench:
//
//	func newStore(tb testing.TB) storetest.Store {
//		s := mystore.New()
//		tb.Cleanup(func() { s.Close() })
//		return s
//	}
type MakeStore func(tb testing.TB) Store

// iterableStore is scs's IterableStore.
type iterableStore interface {
	All() (map[string][]byte, error)
}

// ctxStore is the part of scs's CtxStore beyond Store.
type ctxStore interface {
	DeleteCtx(ctx context.Context, token string) (err error)
	FindCtx(ctx context.Context, token string) (b []byte, found bool, err error)
	CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) (err error)
}

// iterableCtxStore is scs's IterableCtxStore.
type iterableCtxStore interface {
	AllCtx(ctx context.Context) (map[string][]byte, error)
}
