// SPDX-License-Identifier: MIT

package memstore_test

import (
	"testing"
	"time"

	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/storetest"
)

// TestConformance checks the store against scs's store contract with the
// storetest kit, each rule in a synctest bubble: the rules' waits for
// sessions to expire take no real time. The janitor sweeps every few
// milliseconds of the bubble's clock, so that the rules also run with sweeps
// going on beside them. (The integration module runs the kit over this store
// on the real clock too.)
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.RunSynctest(t, func(t testing.TB) storetest.Store {
		m := memstore.New(5 * time.Millisecond)
		t.Cleanup(func() { m.Close() })
		return m
	})
}

// TestHardening checks the rules beyond scs's contract that the store keeps
// (the integration module shows scs's own memstore failing them).
func TestHardening(t *testing.T) {
	t.Parallel()
	storetest.RunHardening(t, func(t testing.TB) storetest.Store {
		m := memstore.New(time.Minute)
		t.Cleanup(func() { m.Close() })
		return m
	})
}
