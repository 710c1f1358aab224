// SPDX-License-Identifier: MIT

package nearstore

import (
	"time"

	"github.com/golangcollege/memstore"
)

// Stats are a Store's figures since New, for monitoring. The counters only
// grow.
type Stats struct {
	Hits           uint64 // Finds answered from the local copy
	Misses         uint64 // Finds that read Redis: not held locally, or the local copy bypassed
	FillsDiscarded uint64 // reads of Redis not kept locally: an invalidation, an overlapping write or a flush came while they ran
	Invalidations  uint64 // tokens Redis said had changed
	Flushes        uint64 // times the local copy was emptied whole: the subscription went, came back, or Redis flushed
	Reconnects     uint64 // subscriptions made again after one was lost or fell silent

	// Bypassed is true while the local copy is not trusted: the
	// subscription is down, or has not answered a PING lately. Every Find
	// then reads Redis.
	Bypassed bool

	// SinceSpoke is the time since the subscription last answered a PING
	// or pushed an invalidation. Beyond the heartbeat timeout the local
	// copy is bypassed.
	SinceSpoke time.Duration

	// LastError is why the subscription was last lost or could not be
	// made; nil if never.
	LastError error

	// Local are the local copy's own figures (its memory, evictions under a
	// cap); it starts afresh at every flush.
	Local memstore.Stats
}

// Stats returns the store's figures. It is cheap enough for every metrics
// scrape, and works after Close.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		FillsDiscarded: s.counters.fillsDiscarded,
		Invalidations:  s.counters.invalidations,
		Flushes:        s.counters.flushes,
		Reconnects:     s.counters.reconnects,
		Bypassed:       !s.healthy.Load(),
		LastError:      s.lastErr,
	}
	l := s.local.Load()
	s.mu.Unlock()
	st.Hits = s.hits.Load()
	st.Misses = s.misses.Load()
	if t := s.lastSpoke.Load(); t != 0 {
		st.SinceSpoke = time.Since(time.Unix(0, t))
	}
	st.Local = l.Stats()
	return st
}
