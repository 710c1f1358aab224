// SPDX-License-Identifier: MIT

package nearstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golangcollege/memstore"
	"github.com/redis/rueidis"
)

// ErrClosed is returned by every method of a Store after Close.
var ErrClosed = errors.New("nearstore: store closed")

// ErrUnsupported is wrapped by the error of New when the client or the
// server cannot give what the store relies on: a Redis Cluster client (the
// subscription would hear of one node's keys only), or a connection that
// does not speak RESP3 (Redis older than 6, or rueidis.ClientOption's
// AlwaysRESP2).
var ErrUnsupported = errors.New("nearstore: unsupported Redis client or server")

// Store is an scs session store that keeps sessions in Redis, laid out as
// scs's redisstore lays them out, and a copy of those it has read or written
// in a local *memstore.MemStore, which Find answers from. Redis tells every
// Store when a session changes (its client tracking, in broadcast mode, on
// the key prefix), and the Store drops its copy at once; while it cannot be
// sure to hear of changes, it reads Redis instead. Create one with New or
// Dial; the zero value is not usable.
//
// Store satisfies scs's Store, CtxStore, IterableStore and
// IterableCtxStore. All methods are safe for concurrent use. After Close
// every method returns ErrClosed.
type Store struct {
	client    rueidis.Client
	ownClient bool // Dial made client: Close closes it
	cfg       config
	scripts   scripts

	// Read by every Find without a lock.
	_       [64]byte
	healthy atomic.Bool                       // the local copy may answer: the subscription is up and was heard from lately
	local   atomic.Pointer[memstore.MemStore] // the local copy, replaced whole by a flush
	hits    atomic.Uint64                     // Finds answered from the local copy
	_       [64]byte
	misses  atomic.Uint64 // Finds that read Redis

	mu       sync.Mutex
	epoch    uint64           // counts flushes: a fill begun before one is discarded
	sub      *subscription    // the subscription while healthy; nil otherwise
	pending  map[string][]*op // reads and writes of Redis under way, by token, while healthy
	counters counters         // see Stats
	lastErr  error            // the last failure of the subscription

	lastSpoke atomic.Int64 // when the subscription last spoke, in Unix nanoseconds; 0 if never

	// afterRead, if not nil, runs between a Find's read of Redis and its
	// fill of the local copy: the tests' way into that window.
	afterRead func(token string)

	closed    atomic.Bool
	closing   chan struct{} // closed by Close: the subscription's goroutine exits
	done      chan struct{} // closed once that goroutine has exited
	closeOnce sync.Once
}

// counters are the figures Stats reports, under Store.mu.
type counters struct {
	fillsDiscarded uint64
	invalidations  uint64
	flushes        uint64
	reconnects     uint64
}

// op is a read of Redis that may fill the local copy, or a write of this
// Store's that may update it, registered before it goes out so that an
// invalidation arriving meanwhile can spoil it.
type op struct {
	write   bool
	epoch   uint64        // Store.epoch when it was registered
	sub     *subscription // the subscription then, which carries writes
	spoiled bool          // it must not fill: an invalidation or an overlapping write came
}

// New returns a Store over client, the caller's: Close does not close it.
// The client must be a single-server or Sentinel client on RESP3 (Redis 6 or
// later); New refuses a Cluster client with ErrUnsupported. New subscribes
// to Redis's invalidations before it returns, and returns the error if it
// cannot, naming the prefix.
//
// The Store takes one connection of client for itself (client.Dedicate), for
// the subscription and for its writes, and uses client's shared connections
// for its reads.
func New(client rueidis.Client, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.prefix == "" {
		return nil, errors.New("nearstore: WithPrefix(\"\"): the session prefix must not be empty, since the store subscribes to changes of the keys under it; use the prefix your redisstore instances use (\"scs:session:\" by default)")
	}
	if cfg.deletedPrefix == "" {
		cfg.deletedPrefix = "deleted:" + cfg.prefix
	}
	if strings.HasPrefix(cfg.deletedPrefix, cfg.prefix) {
		return nil, fmt.Errorf("nearstore: WithDeletedPrefix(%q) begins with the session prefix %q: redisstore would list the markers as sessions; pick a prefix outside it", cfg.deletedPrefix, cfg.prefix)
	}
	if client.Mode() == rueidis.ClientModeCluster {
		return nil, fmt.Errorf("%w: a Redis Cluster client; pass a single-server or Sentinel client", ErrUnsupported)
	}
	s := &Store{
		client:  client,
		cfg:     cfg,
		scripts: newScripts(),
		pending: make(map[string][]*op),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.local.Store(s.newLocal())
	ctx, cancel := context.WithTimeout(context.Background(), max(5*time.Second, 5*cfg.heartbeat))
	defer cancel()
	sub, sent, err := s.subscribe(ctx)
	if err != nil {
		s.local.Load().Close()
		return nil, fmt.Errorf("nearstore: subscribing to Redis's invalidations of the keys under %q: %w", cfg.prefix, err)
	}
	s.goHealthy(sub)
	go s.run(sub, sent)
	return s, nil
}

// Dial returns a Store over a client of its own, made from opt with
// rueidis.NewClient (InitAddress, TLSConfig, Username and Password,
// Sentinel: whatever rueidis supports there). Close closes that client.
// The client's own client-side cache is turned off: the Store keeps its own.
func Dial(opt rueidis.ClientOption, opts ...Option) (*Store, error) {
	opt.DisableCache = true
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("nearstore: connecting to Redis at %v: %w", opt.InitAddress, err)
	}
	s, err := New(client, opts...)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.ownClient = true
	return s, nil
}

// Close stops the subscription and its goroutine and returns once it has
// exited; of a Store from Dial it also closes the client. It is safe to call
// more than once and from several goroutines at a time; later calls return
// nil at once. After Close every method returns ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.healthy.Store(false)
		close(s.closing)
		<-s.done
		s.local.Load().Close()
		if s.ownClient {
			s.client.Close()
		}
	})
	return nil
}

// newLocal returns an empty local copy. It lets a token it dropped be
// filled again: it drops a token whenever Redis says the token changed,
// not only at a Delete, and Redis's marker keeps a deleted session deleted
// (see Delete), so a local memory of deletes would only keep changed
// sessions out of the cache.
func (s *Store) newLocal() *memstore.MemStore {
	opts := append(s.cfg.local[:len(s.cfg.local):len(s.cfg.local)], memstore.WithReusableDeletedTokens())
	return memstore.New(s.cfg.cleanup, opts...)
}

func (s *Store) key(token string) string    { return s.cfg.prefix + token }
func (s *Store) marker(token string) string { return s.cfg.deletedPrefix + token }
func (s *Store) ctx() context.Context       { return context.Background() }

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Find returns the data of the session token: from the local copy when it
// holds the token and the subscription is healthy, otherwise from Redis,
// data and remaining lifetime in one round trip, filling the local copy.
// A token that is unknown or expired gives (nil, false, nil).
//
// The returned slice is shared: callers must not modify it. Its capacity
// equals its length, so an append copies.
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(s.ctx(), token)
}

// FindCtx is Find for scs's CtxStore interface: ctx bounds the read of
// Redis, when there is one.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if s.healthy.Load() {
		if b, ok, _ := s.local.Load().Find(token); ok {
			s.hits.Add(1)
			return b, true, nil
		}
	}
	if err := s.checkOpen(); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.misses.Add(1)
	o := s.register(token, false)
	b, ttl, found, err := s.read(ctx, token)
	if s.afterRead != nil {
		s.afterRead(token)
	}
	if o != nil {
		s.complete(token, o, func(l *memstore.MemStore) bool {
			if err != nil || !found || ttl <= 0 {
				return false
			}
			return l.Commit(token, b, time.Now().Add(ttl)) == nil
		})
	}
	if err != nil {
		return nil, false, err
	}
	return b, found, nil
}

// read reads the session token's data and remaining lifetime from Redis. A
// lifetime of 0 or less means none that can be cached (no expiry).
func (s *Store) read(ctx context.Context, token string) (b []byte, ttl time.Duration, found bool, err error) {
	res := s.scripts.find.exec(ctx, s.client, []string{s.key(token)})
	if _, isRedis := rueidis.IsRedisErr(res.Error()); res.Error() != nil && !isRedis && ctx.Err() == nil {
		// A connection found broken (a restarted server, say): a read is
		// safe to try again, and the client makes a new one.
		res = s.scripts.find.exec(ctx, s.client, []string{s.key(token)})
	}
	vals, err := res.ToArray()
	if rueidis.IsRedisNil(err) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("nearstore: reading a session from Redis: %w", err)
	}
	if len(vals) != 2 {
		return nil, 0, false, fmt.Errorf("nearstore: reading a session from Redis: %d values in the reply, want 2", len(vals))
	}
	data, err := vals[0].AsBytes()
	if err != nil {
		return nil, 0, false, fmt.Errorf("nearstore: reading a session from Redis: %w", err)
	}
	ms, err := vals[1].AsInt64()
	if err != nil {
		return nil, 0, false, fmt.Errorf("nearstore: reading a session's expiry from Redis: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return data[:len(data):len(data)], time.Duration(ms) * time.Millisecond, true, nil
}

// Commit stores b under token until expiry, in Redis first, then in the
// local copy, so that this Store finds it at once and every other Store
// drops its copy. The caller may reuse b once Commit returns. An expiry at
// or before now deletes the token instead, as Delete does.
//
// A token deleted before the deadline it then had (by Delete on any Store
// over the same Redis and prefix) is refused, atomically in Redis, with an
// error wrapping memstore.ErrDeleted: a request that loaded the session
// before a logout must not bring it back.
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(s.ctx(), token, b, expiry)
}

// CommitCtx is Commit for scs's CtxStore interface: ctx bounds the write.
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !expiry.After(time.Now()) {
		return s.delete(ctx, token)
	}
	o := s.register(token, true)
	keys := []string{s.key(token), s.marker(token)}
	ms := strconv.FormatInt(expiry.UnixMilli(), 10)
	res := s.write(ctx, o, &s.scripts.commit, keys, rueidis.BinaryString(b), ms)
	n, err := res.AsInt64()
	stored := err == nil && n == 1
	if o != nil {
		s.complete(token, o, func(l *memstore.MemStore) bool {
			return stored && l.Commit(token, b, expiry) == nil
		})
	}
	if err != nil {
		return fmt.Errorf("nearstore: writing a session to Redis: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("nearstore: Commit refused: the session was deleted before its expiry (its marker is under %q); answer as to a request without a session: %w", s.cfg.deletedPrefix, memstore.ErrDeleted)
	}
	return nil
}

// Delete removes the session token, from Redis first, then from the local
// copy. It leaves a marker beside the session's key until the session's
// expiry, so that no Store commits the token again before then (see
// Commit). Deleting an unknown token does nothing and returns nil.
func (s *Store) Delete(token string) error {
	return s.DeleteCtx(s.ctx(), token)
}

// DeleteCtx is Delete for scs's CtxStore interface: ctx bounds the write.
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.delete(ctx, token)
}

func (s *Store) delete(ctx context.Context, token string) error {
	o := s.register(token, true)
	res := s.write(ctx, o, &s.scripts.delete, []string{s.key(token), s.marker(token)})
	err := res.Error()
	if o != nil {
		s.complete(token, o, func(*memstore.MemStore) bool { return false })
	}
	if err != nil {
		return fmt.Errorf("nearstore: deleting a session in Redis: %w", err)
	}
	return nil
}

// write runs sc with keys and args on the subscription's connection, o's,
// where Redis does not echo this Store's own changes to it (NOLOOP), or on
// the client's shared connections when there is none (o is nil) or it has
// just gone.
func (s *Store) write(ctx context.Context, o *op, sc *script, keys []string, args ...string) rueidis.RedisResult {
	if o != nil && o.sub != nil {
		res := sc.exec(ctx, o.sub.dc, keys, args...)
		err := res.Error()
		if !errors.Is(err, rueidis.ErrDedicatedClientRecycled) && !errors.Is(err, rueidis.ErrClosing) {
			return res
		}
	}
	return sc.exec(ctx, s.client, keys, args...)
}

// register records a read (write false) or a write of token about to go out
// to Redis, and returns it; it returns nil while the local copy is bypassed.
// A write of this Store's own makes Redis send it no invalidation, so
// overlapping operations on one token spoil each other: of two reads, or a
// read and a write, finishing in another order than Redis ran them, the
// later finisher could otherwise leave the older data in the local copy.
func (s *Store) register(token string, write bool) *op {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.healthy.Load() {
		return nil
	}
	o := &op{write: write, epoch: s.epoch, sub: s.sub}
	for _, p := range s.pending[token] {
		if write {
			p.spoiled = true
		}
		if p.write {
			o.spoiled = true
		}
	}
	s.pending[token] = append(s.pending[token], o)
	return o
}

// complete unregisters o, an operation on token, and lets put update the
// local copy if nothing spoiled o: no invalidation of token, no overlapping
// write, no flush since it was registered. put reports whether it stored
// something. A write whose put is not allowed or stores nothing removes
// token from the local copy, which may hold older data that no invalidation
// will remove.
func (s *Store) complete(token string, o *op, put func(*memstore.MemStore) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := s.pending[token]
	for i, p := range ops {
		if p == o {
			ops = append(ops[:i], ops[i+1:]...)
			break
		}
	}
	if len(ops) == 0 {
		delete(s.pending, token)
	} else {
		s.pending[token] = ops
	}
	l := s.local.Load()
	if !o.spoiled && o.epoch == s.epoch && s.healthy.Load() {
		if put(l) {
			return
		}
	} else if !o.write {
		s.counters.fillsDiscarded++
	}
	if o.write {
		l.Delete(token)
	}
}

// All returns a new map from token to data of every session under the
// prefix in Redis, read with SCAN and MGET, not from the local copy. It is
// not an atomic snapshot. The map and its slices are the caller's.
func (s *Store) All() (map[string][]byte, error) {
	return s.AllCtx(s.ctx())
}

// AllCtx is All for scs's IterableCtxStore interface: ctx bounds the reads.
func (s *Store) AllCtx(ctx context.Context) (map[string][]byte, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	sessions := make(map[string][]byte)
	match := globEscape(s.cfg.prefix) + "*"
	var cursor uint64
	for {
		entry, err := s.client.Do(ctx, s.client.B().Scan().Cursor(cursor).Match(match).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return nil, fmt.Errorf("nearstore: listing sessions in Redis: %w", err)
		}
		if len(entry.Elements) > 0 {
			vals, err := s.client.Do(ctx, s.client.B().Mget().Key(entry.Elements...).Build()).ToArray()
			if err != nil {
				return nil, fmt.Errorf("nearstore: reading sessions from Redis: %w", err)
			}
			for i, v := range vals {
				b, err := v.AsBytes()
				if rueidis.IsRedisNil(err) {
					continue // expired or deleted since the SCAN
				}
				if err != nil {
					return nil, fmt.Errorf("nearstore: reading sessions from Redis: %w", err)
				}
				if b == nil {
					b = []byte{}
				}
				sessions[strings.TrimPrefix(entry.Elements[i], s.cfg.prefix)] = b
			}
		}
		cursor = entry.Cursor
		if cursor == 0 {
			return sessions, nil
		}
	}
}

// globEscape escapes the characters that Redis's glob patterns give a
// meaning to.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
