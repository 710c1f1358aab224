// SPDX-License-Identifier: MIT

package nearstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// The subscription: one connection per Store, on which Redis's client
// tracking in broadcast mode pushes the keys under the prefix that change.
// The local copy answers only while the subscription is known to be
// healthy: a PING on it was answered, and was sent less than four fifths of
// the heartbeat timeout ago. Replies and pushes share the connection, in
// order, so a PING's reply comes after the invalidations of every change
// Redis made before it: a local copy that has handled that reply is at most
// as old as the PING. The last fifth of the timeout is slack for a late
// timer on a loaded machine, so that no read is staler than the timeout.

// subscription is one connection with tracking on.
type subscription struct {
	dc    rueidis.DedicatedClient
	errs  <-chan error // closed once the connection is gone
	pongs chan pong    // the heartbeat PING's result
	ping  bool         // a heartbeat PING is in flight: its result is due on pongs
}

// close closes the connection, which may take a while on a hung server: the
// store bypasses the local copy first.
func (sub *subscription) close() {
	sub.dc.Close()
	if sub.ping {
		<-sub.pongs
		sub.ping = false
	}
}

// subscribe takes a connection of the client, turns tracking on for the
// prefix, and returns it with the time the command was sent.
func (s *Store) subscribe(ctx context.Context) (*subscription, time.Time, error) {
	dc, _ := s.client.Dedicate()
	sub := &subscription{dc: dc, errs: dc.SetOnInvalidations(s.onInvalidate), pongs: make(chan pong, 1)}
	sent := time.Now()
	res := dc.DoMulti(ctx,
		dc.B().ClientInfo().Build(),
		// A client with its own client-side cache has tracking on, in
		// another mode, on every connection; Redis refuses to switch mode
		// without turning it off first.
		dc.B().ClientTracking().Off().Build(),
		dc.B().ClientTracking().On().Prefix().Prefix(s.cfg.prefix).Bcast().Noloop().Build())
	for _, r := range res {
		if err := r.Error(); err != nil {
			sub.close()
			return nil, time.Time{}, err
		}
	}
	if info, _ := res[0].ToString(); strings.Contains(info, " resp=") && !strings.Contains(info, " resp=3") {
		sub.close()
		return nil, time.Time{}, fmt.Errorf("%w: the connection speaks RESP2, which carries no invalidations beside replies; use Redis 6 or later, without rueidis.ClientOption.AlwaysRESP2", ErrUnsupported)
	}
	s.lastSpoke.Store(time.Now().UnixNano())
	return sub, sent, nil
}

// run keeps the subscription: it serves sub until it fails or falls silent,
// then bypasses and flushes the local copy and subscribes again, until Close.
func (s *Store) run(sub *subscription, sent time.Time) {
	defer close(s.done)
	for {
		err := s.serve(sub, sent)
		s.goUnhealthy(err)
		sub.close()
		for sub = nil; sub == nil; {
			select {
			case <-s.closing:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.heartbeat)
			sub, sent, err = s.subscribe(ctx)
			cancel()
			if err != nil {
				s.setErr(err)
				select {
				case <-s.closing:
					return
				case <-time.After(s.cfg.heartbeat / 5):
				}
			}
		}
		s.mu.Lock()
		s.counters.reconnects++
		s.mu.Unlock()
		s.goHealthy(sub)
	}
}

type pong struct {
	sent time.Time
	err  error
}

// serve pings sub five times per heartbeat timeout, and returns why it
// stopped trusting it: the connection went, a PING failed, or none sent in
// the last four fifths of the timeout was answered. It returns nil on Close.
func (s *Store) serve(sub *subscription, sent time.Time) error {
	trust := s.cfg.heartbeat * 4 / 5
	ticker := time.NewTicker(s.cfg.heartbeat / 5)
	defer ticker.Stop()
	timer := time.NewTimer(time.Until(sent.Add(trust)))
	defer timer.Stop()
	for {
		select {
		case <-s.closing:
			return nil
		case err := <-sub.errs:
			if err == nil {
				err = fmt.Errorf("the connection closed")
			}
			return fmt.Errorf("subscription lost: %w", err)
		case <-ticker.C:
			if sub.ping {
				continue
			}
			sub.ping = true
			go func(sent time.Time) {
				ctx, cancel := context.WithTimeout(context.Background(), s.cfg.heartbeat)
				defer cancel()
				sub.pongs <- pong{sent, sub.dc.Do(ctx, sub.dc.B().Ping().Build()).Error()}
			}(time.Now())
		case p := <-sub.pongs:
			sub.ping = false
			if p.err != nil {
				return fmt.Errorf("heartbeat PING failed: %w", p.err)
			}
			s.lastSpoke.Store(time.Now().UnixNano())
			timer.Reset(time.Until(p.sent.Add(trust)))
		case <-timer.C:
			return fmt.Errorf("subscription silent: no PING answered within %v", trust)
		}
	}
}

// onInvalidate drops the tokens of keys, pushed by Redis, from the local
// copy and spoils the fills of them under way. Nil keys mean that Redis
// flushed its keys, or that the connection closed: the local copy is
// flushed. rueidis calls it on the connection's reading goroutine, before
// it hands on any later reply, so it must be quick.
func (s *Store) onInvalidate(keys []rueidis.RedisMessage) {
	if keys == nil {
		s.flush()
		return
	}
	s.lastSpoke.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.local.Load()
	for _, k := range keys {
		key, err := k.ToString()
		if err != nil || !strings.HasPrefix(key, s.cfg.prefix) {
			continue
		}
		token := key[len(s.cfg.prefix):]
		s.counters.invalidations++
		l.Delete(token)
		for _, o := range s.pending[token] {
			o.spoiled = true
		}
	}
}

// flush replaces the local copy with an empty one, and spoils every fill
// under way.
func (s *Store) flush() {
	s.mu.Lock()
	old := s.flushLocked()
	s.mu.Unlock()
	old.Close()
}

func (s *Store) flushLocked() (old interface{ Close() error }) {
	s.epoch++
	s.counters.flushes++
	return s.local.Swap(s.newLocal())
}

// goHealthy lets the local copy answer again, flushed: while the
// subscription was down, changes went unheard, and a restarted server may
// have lost keys.
func (s *Store) goHealthy(sub *subscription) {
	s.mu.Lock()
	old := s.flushLocked()
	s.sub = sub
	s.healthy.Store(!s.closed.Load())
	s.mu.Unlock()
	old.Close()
}

// goUnhealthy bypasses the local copy, and flushes it to free its memory,
// for why (nil on Close).
func (s *Store) goUnhealthy(why error) {
	s.mu.Lock()
	s.healthy.Store(false)
	s.sub = nil
	old := s.flushLocked()
	if why != nil {
		s.lastErr = why
	}
	s.mu.Unlock()
	old.Close()
}

func (s *Store) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}
