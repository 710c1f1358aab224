// SPDX-License-Identifier: MIT

package memstore

import (
	"encoding/json"
	"errors"
	"time"
)

// counters are the figures Stats reports beyond the index and its sizes.
// They are guarded by MemStore.mu, and only grow.
type counters struct {
	expired              uint64        // expired sessions removed by the janitor or to make room
	evicted              uint64        // live sessions evicted to keep under the cap
	compactions          uint64        // chunks compacted
	sweeps               uint64        // janitor passes completed
	lastSweep            time.Duration // how long the last pass took
	lastSweepLongestHold time.Duration // the longest single lock hold of the last pass
}

// Stats is a store's figures at one moment, for monitoring. The counters
// count from New and keep their values after Close. A Stats is a value: it
// shares nothing with the store, and is safe to read from any goroutine.
//
// It encodes to JSON, as expvar and most metrics exporters do, with
// LastDiskError as its text, or null if none (see MarshalJSON), and the
// other fields as encoding/json writes them.
type Stats struct {
	Sessions             int           // sessions held, as Len: expired ones not yet removed included
	Bytes                int64         // the memory held, chunks and index: see WithMaxBytes
	MaxBytes             int64         // the cap set by WithMaxBytes; 0 means none
	Expired              uint64        // expired sessions removed by the janitor or to make room under the cap
	Evicted              uint64        // live sessions evicted to keep under the cap
	Compactions          uint64        // chunks whose live sessions were moved so that their dead bytes could be freed
	Sweeps               uint64        // janitor passes completed
	LastSweep            time.Duration // how long the last janitor pass took
	LastSweepLongestHold time.Duration // the longest the last pass held the lock at one time

	// Tokens remembered as deleted, so that a Commit of them is refused
	// with ErrDeleted until the deadline their session had (see
	// WithReusableDeletedTokens). Their table counts in Bytes.
	DeletedTokens        int    // remembered now, expired ones the janitor has not removed yet included
	DeletedTokensDropped uint64 // forgotten before their deadline, to keep within a 16th of the cap
	RefusedCommits       uint64 // Commits refused with ErrDeleted

	// A store from Open reports its disk here; one from New, zeros.
	Syncs           uint64    // fsyncs of the log
	Rewrites        uint64    // bases written afresh, each replacing the files before it
	DiskErrors      uint64    // failed writes, syncs and rewrites: the store kept serving from memory
	LastDiskError   error     // the last of them, naming the file and what the system said; nil if none
	LastDiskErrorAt time.Time // when it happened; the zero Time if none
	TornRecords     uint64    // records cut short by a crash at the end of a log, dropped by Open
}

// Stats returns the store's figures. It takes the read lock for a moment,
// which requests share, so it is cheap enough for every metrics scrape.
func (m *MemStore) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := Stats{
		Sessions:             m.lenLocked(),
		Bytes:                m.heldLocked(),
		MaxBytes:             m.maxBytes,
		Expired:              m.counters.expired,
		Evicted:              m.counters.evicted,
		Compactions:          m.counters.compactions,
		Sweeps:               m.counters.sweeps,
		LastSweep:            m.counters.lastSweep,
		LastSweepLongestHold: m.counters.lastSweepLongestHold,
		DeletedTokens:        m.deleted.n,
		DeletedTokensDropped: m.deleted.dropped,
		RefusedCommits:       m.deleted.refused,
	}
	if m.log != nil {
		m.log.addStats(&st)
	}
	return st
}

// statsFields is Stats without its methods, so that MarshalJSON and
// UnmarshalJSON can hand the other fields to encoding/json.
type statsFields Stats

// statsJSON is Stats as JSON holds it: LastDiskError as its text, shadowing
// the embedded field, which encoding/json would write as {} since an error's
// fields are unexported.
type statsJSON struct {
	statsFields
	LastDiskError *string
}

// MarshalJSON encodes st as encoding/json would, but for LastDiskError,
// which it writes as the error's text, or null if there is none: the error
// value itself would encode as {} and lose the file name and the system's
// words that an operator needs. It does not modify st.
func (st Stats) MarshalJSON() ([]byte, error) {
	v := statsJSON{statsFields: statsFields(st)}
	if st.LastDiskError != nil {
		text := st.LastDiskError.Error()
		v.LastDiskError = &text
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes what MarshalJSON encodes, so that a scraper can read
// a published Stats back into one. LastDiskError comes back as an error with
// the same text, nil for null: the error's type, and what errors.Is and
// errors.As would find in it, do not survive the text.
func (st *Stats) UnmarshalJSON(b []byte) error {
	var v statsJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*st = Stats(v.statsFields)
	st.LastDiskError = nil
	if v.LastDiskError != nil {
		st.LastDiskError = errors.New(*v.LastDiskError)
	}
	return nil
}
