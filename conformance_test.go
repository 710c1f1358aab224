// SPDX-License-Identifier: MIT

package memstore_test

import (
	"testing"
	"time"

	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/storetest"
)

// TestConformance checks the store against scs's store contract with the
// storetest kit. The janitor sweeps every few milliseconds, so that the rules
// also run with sweeps going on beside them.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		m := memstore.New(5 * time.Millisecond)
		t.Cleanup(func() { m.Close() })
		return m
	})
}
