// SPDX-License-Identifier: MIT

// Command example serves the original memstore README example, ported to scs
// v2: /put stores "Hello world!" in the session and /get writes it back;
// /logout ends the session (scs's Destroy, which deletes it from the store).
//
//	cd example && go run .
//	curl -c /tmp/c -b /tmp/c localhost:4000/put
//	curl -c /tmp/c -b /tmp/c localhost:4000/get
//	curl -c /tmp/c -b /tmp/c localhost:4000/logout
//
// Flags:
//
//	-addr                 the TCP address to listen on (default ":4000"; ":0" picks a free port)
//	-cleanup              how often the janitor removes expired sessions (default 1m; 0 turns it off)
//	-dir DIR              keep the sessions in DIR too, so that they survive a crash (memstore.Open)
//	-max-bytes N          cap the memory the sessions take at N bytes (default 0: no cap)
//	-snapshot FILE        restore the sessions from FILE at start, save them to it at shutdown
//	-snapshot-ignore-bad  start with no sessions if FILE cannot be restored, rather than refuse to start
//
// With -snapshot it first restores FILE. A missing FILE is created, empty; one
// that cannot be restored makes it refuse to start, with exit status 1, unless
// -snapshot-ignore-bad is given. A FILE that is not a regular file (a
// directory, a link), or that the shutdown could not replace, makes it refuse
// to start whatever the flags: the shutdown would lose every session.
//
// A -max-bytes cap smaller than the one session /put writes needs is refused
// with exit status 2: every /put would fail. The error gives the smallest cap
// that holds it.
//
// With -dir it opens the store with memstore.Open, which restores what DIR
// holds and then records every change there: a session is on disk within a
// second of the request that changed it, and a logout before /logout
// answers, so that users stay logged in, and logged out, across a crash or a
// kill -9 as well as a restart. A DIR that cannot be opened (damaged, in use
// by another process, not writable) makes it refuse to start, with exit
// status 1. -dir and -snapshot are two ways of keeping the sessions: only one
// may be given.
//
// It logs the address it listens on, and on SIGINT or SIGTERM stops accepting
// connections, lets requests in flight finish (http.Server.Shutdown), closes
// the store (with -dir, which writes and syncs what is not on disk yet),
// saves it to the -snapshot file if there is one and exits with status 0, or
// 1 if the close or the save failed. A second signal during shutdown exits at
// once, without saving; the previous snapshot is left whole, and DIR holds
// every change but those of the last second. With -snapshot or -dir, users
// stay logged in across a restart:
//
//	go run . -snapshot /tmp/sessions.snap
//	go run . -dir /tmp/sessions
//
// /debug/vars serves the expvar variables, among them the store's Stats
// under the name "memstore" (the last disk error as its text, null if none).
//
// A request whose session the store fails to load or save gets a 500 that
// says so, and the error goes to the log.
//
// It is a module of its own, requiring scs and memstore only, so that
// running it fetches scs and nothing else and builds with the Go version
// memstore's go.mod names.
package main

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/golangcollege/memstore"
)

// shutdownTimeout bounds how long requests in flight may take to finish once
// a signal has arrived.
const shutdownTimeout = 10 * time.Second

// config is everything the flags set. A new flag is one field here and one
// line in parseFlags; run reads the field.
type config struct {
	addr              string        // -addr: the TCP address to listen on
	cleanup           time.Duration // -cleanup: the janitor's interval, 0 for none
	dir               string        // -dir: the directory the sessions survive a crash in, "" for none
	maxBytes          int64         // -max-bytes: the store's byte cap, 0 for none
	snapshot          string        // -snapshot: the file the sessions survive a restart in, "" for none
	snapshotIgnoreBad bool          // -snapshot-ignore-bad: start empty if the file cannot be restored
}

// parseFlags parses args (without the program name) into a config. Usage and
// errors go to output. It returns flag.ErrHelp for -h and -help.
func parseFlags(name string, args []string, output io.Writer) (config, error) {
	var cfg config
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(output)
	flags.StringVar(&cfg.addr, "addr", ":4000", "the TCP `address` to listen on (\":0\" picks a free port)")
	flags.DurationVar(&cfg.cleanup, "cleanup", time.Minute, "how often the janitor removes expired sessions (0 turns it off)")
	flags.StringVar(&cfg.dir, "dir", "", "keep the sessions in `DIR` too, so that they survive a crash (not with -snapshot)")
	flags.Int64Var(&cfg.maxBytes, "max-bytes", 0, "cap the memory the sessions take at `N` bytes, evicting those nearest their expiry (0: no cap)")
	flags.StringVar(&cfg.snapshot, "snapshot", "", "restore the sessions from `FILE` at start, save them to it at shutdown")
	flags.BoolVar(&cfg.snapshotIgnoreBad, "snapshot-ignore-bad", false, "start with no sessions if the -snapshot file cannot be restored, rather than refuse to start")
	if err := flags.Parse(args); err != nil {
		return config{}, err
	}
	var err error
	switch {
	case flags.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", flags.Arg(0))
	case checkAddr(cfg.addr) != nil:
		err = fmt.Errorf("-addr %s: %w", cfg.addr, checkAddr(cfg.addr))
	case cfg.cleanup < 0:
		err = fmt.Errorf("-cleanup %v: must not be negative", cfg.cleanup)
	case cfg.maxBytes < 0:
		err = fmt.Errorf("-max-bytes %d: must not be negative", cfg.maxBytes)
	case cfg.dir != "" && cfg.snapshot != "":
		err = errors.New("-dir and -snapshot: give one or the other; -dir keeps the sessions across a crash as well as a restart")
	case cfg.snapshotIgnoreBad && cfg.snapshot == "":
		err = errors.New("-snapshot-ignore-bad: there is no -snapshot file to ignore")
	case cfg.maxBytes > 0:
		err = checkMaxBytes(cfg.maxBytes)
	}
	if err != nil {
		fmt.Fprintln(output, err)
		flags.Usage()
		return config{}, err
	}
	return cfg, nil
}

// checkAddr returns what is wrong with addr as an address to listen on,
// which net.Listen would say only once the store is restored.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port (%w); \":4000\" listens on port 4000 of every interface", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		if _, err := net.LookupPort("tcp", port); err != nil {
			return errors.New("invalid port: give a number from 0 to 65535, 0 for any free port")
		}
	}
	return nil
}

// checkMaxBytes refuses a cap too small for the session /put writes: the
// store would refuse every such Commit, so that no user could ever log in.
func checkMaxBytes(maxBytes int64) error {
	least, err := smallestCap()
	if err != nil {
		return fmt.Errorf("-max-bytes %d: cannot tell the smallest cap that holds a session: %w", maxBytes, err)
	}
	if maxBytes < least {
		return fmt.Errorf("-max-bytes %d: too small for the one session /put writes, which needs a cap of at least %d bytes; give at least that, or 0 for no cap", maxBytes, least)
	}
	return nil
}

// smallestCap returns the smallest byte cap under which a store holds the
// session that /put writes, measured rather than computed: it serves a
// /put, as a browser without a session would send it, with a store with no
// cap, then commits the token and data that scs handed that store to
// stores of ever smaller caps. Measured, it stays true whatever scs's
// encoding and the store's accounting become.
func smallestCap() (int64, error) {
	token, data, err := putSession()
	if err != nil {
		return 0, err
	}
	holds := func(maxBytes int64) bool {
		store := memstore.New(0, memstore.WithMaxBytes(maxBytes))
		defer store.Close()
		return store.Commit(token, data, time.Now().Add(time.Hour)) == nil
	}
	lo, hi := int64(0), int64(1) // lo does not hold it, hi does once found
	for !holds(hi) {
		if hi >= 1<<40 {
			return 0, fmt.Errorf("no cap up to %d bytes holds a session of %d bytes", hi, len(token)+len(data))
		}
		lo, hi = hi, 2*hi
	}
	for hi-lo > 1 {
		if mid := lo + (hi-lo)/2; holds(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// putSession serves a /put in memory and returns the token and the data
// that scs committed to the store for it.
func putSession() (token string, data []byte, err error) {
	store := memstore.New(0)
	defer store.Close()
	sm := newSessionManager(store, log.New(io.Discard, "", 0))
	w := httptest.NewRecorder()
	routes(sm).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/put", nil))
	for _, c := range w.Result().Cookies() {
		if c.Name == sm.Cookie.Name {
			token = c.Value
		}
	}
	data, found, err := store.Find(token)
	if err != nil || !found {
		return "", nil, fmt.Errorf("/put answered %d and left no session in the store (%v)", w.Code, err)
	}
	return token, data, nil
}

// main parses the flags, opens the store, then runs the server until SIGINT
// or SIGTERM.
func main() {
	cfg, err := parseFlags(os.Args[0], os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal now ends the process at once
	}()

	logger := log.New(os.Stderr, "", log.LstdFlags)
	store, err := openStore(cfg, logger)
	if err != nil {
		logger.Print(err)
		os.Exit(1)
	}
	// Published here, once per process: expvar.Publish panics if a name is
	// published twice. Stats encodes its last disk error as its text.
	expvar.Publish("memstore", expvar.Func(func() any { return store.Stats() }))

	if err := run(ctx, cfg, store, logger); err != nil {
		logger.Print(err)
		os.Exit(1)
	}
}

// openStore returns a new store as cfg says, holding the sessions saved in
// the -dir directory or the -snapshot file if there is one.
//
// A -dir directory that cannot be opened is an error: memstore.Open changes
// nothing in a damaged directory, and docs/durability.md says how to recover
// it.
//
// A file that is there but cannot be restored is an error unless
// -snapshot-ignore-bad is set: starting without it would silently log every
// user out, and the next shutdown would overwrite it. A missing file only
// means that nothing was saved yet; an empty snapshot is then written at once.
// Whichever it is, a path that the shutdown could not save to is an error
// now rather than at shutdown, when the sessions would be lost: see
// checkSnapshotPath.
func openStore(cfg config, logger *log.Logger) (*memstore.MemStore, error) {
	capped := memstore.WithMaxBytes(cfg.maxBytes)
	if cfg.dir != "" {
		store, err := memstore.Open(cfg.dir, cfg.cleanup, capped)
		if err != nil {
			return nil, fmt.Errorf("refusing to start: opening the -dir directory %s: %w", cfg.dir, err)
		}
		logger.Printf("restored %d sessions from %s", store.Len(), cfg.dir)
		return store, nil
	}
	store := memstore.New(cfg.cleanup, capped)
	if cfg.snapshot == "" {
		return store, nil
	}
	if err := checkSnapshotPath(cfg.snapshot); err != nil {
		store.Close()
		return nil, fmt.Errorf("refusing to start: -snapshot %s: %w", cfg.snapshot, err)
	}
	err := store.ReadFile(cfg.snapshot) // its errors name the file
	switch {
	case err == nil:
		logger.Printf("restored %d sessions from %s", store.Len(), cfg.snapshot)
	case errors.Is(err, fs.ErrNotExist):
		if err := store.WriteFile(cfg.snapshot); err != nil {
			store.Close()
			return nil, fmt.Errorf("refusing to start: -snapshot %s: cannot write the file: %w", cfg.snapshot, err)
		}
		logger.Printf("no sessions to restore: nothing saved in %s yet", cfg.snapshot)
	case cfg.snapshotIgnoreBad:
		logger.Printf("warning: starting with no sessions, as -snapshot-ignore-bad says: %v; the next shutdown replaces the file", err)
	default:
		store.Close()
		return nil, fmt.Errorf("refusing to start: restoring the sessions: %w; move the file away, or pass -snapshot-ignore-bad to start with no sessions", err)
	}
	return store, nil
}

// checkSnapshotPath returns what would make the shutdown's WriteFile to
// name fail, where name exists: that it is not a regular file (WriteFile
// cannot rename a file over a directory, and would replace a link rather
// than the file it points to), or that its directory does not take the
// temporary file WriteFile writes first. A missing name is left to the
// caller, which writes it.
func checkSnapshotPath(name string) error {
	info, err := os.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case info.IsDir():
		return errors.New("is a directory, which the shutdown could not replace with the sessions: give the path of a file")
	case info.Mode()&fs.ModeSymlink != 0:
		return errors.New("is a symbolic link, which the shutdown would replace with a file: give the path of the file it points to")
	case !info.Mode().IsRegular():
		return fmt.Errorf("is not a regular file (mode %v), which the shutdown could not replace with the sessions: give the path of a file", info.Mode())
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".*.tmp")
	if err != nil {
		return fmt.Errorf("the shutdown could not save the sessions beside it: %w", err)
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// newSessionManager returns the session manager of the application, keeping
// its sessions in store. Its ErrorFunc logs to logger why a session could
// not be loaded or saved, and tells the browser so, where scs's default
// would log to the standard logger.
//
// A Commit the store refused because the session was deleted meanwhile (a
// request that loaded it before a /logout in another tab, ending after it)
// is a session that has ended, not a server fault: the request is answered
// as one without a session, and no cookie brings the old token back.
func newSessionManager(store *memstore.MemStore, logger *log.Logger) *scs.SessionManager {
	sm := scs.New()
	sm.Store = store
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, memstore.ErrDeleted) {
			http.Error(w, "401 Unauthorized: your session has ended; log in again", http.StatusUnauthorized)
			return
		}
		logger.Printf("%s %s: the session store failed: %v", r.Method, r.URL.Path, err)
		http.Error(w, "500 Internal Server Error: the session could not be loaded or saved", http.StatusInternalServerError)
	}
	return sm
}

// routes returns the application: /put, /get and /logout, wrapped in
// sm.LoadAndSave, and /debug/vars outside it, so that a metrics scrape never
// touches a session.
func routes(sm *scs.SessionManager) http.Handler {
	app := http.NewServeMux()
	app.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "message", "Hello world!")
	})
	app.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.GetString(r.Context(), "message"))
	})
	app.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		// A logout that the store could not make durable (with -dir, a
		// failing disk) fails the request: the session could come back.
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, "logging out failed", http.StatusInternalServerError)
		}
	})

	mux := http.NewServeMux()
	mux.Handle("/", sm.LoadAndSave(app))
	// expvar registers itself only on http.DefaultServeMux. It shows the
	// command line and memory statistics too: a real server would serve it
	// on a private address.
	mux.Handle("/debug/vars", expvar.Handler())
	return mux
}

// run serves the application with store until ctx is done, then shuts the
// server down gracefully, closes the store and saves it to the -snapshot file
// if there is one. It returns nil after a clean shutdown, close and save.
func run(ctx context.Context, cfg config, store *memstore.MemStore, logger *log.Logger) error {
	// On the early returns too: stops the janitor, and with -dir puts every
	// change on disk. Its error, there, is less news than theirs.
	defer store.Close()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("-addr %s: %w", cfg.addr, err)
	}
	srv := &http.Server{
		Handler:           routes(newSessionManager(store, logger)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	logger.Printf("listening on %s", ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served: // Serve failed before any signal
		return err
	case <-ctx.Done():
	}

	logger.Print("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx) // waits for requests in flight: none changes a session after the save
	if err != nil {
		err = fmt.Errorf("shutdown: %w", err)
	}
	// Stops the janitor, and with -dir writes and syncs what is not on disk
	// yet; WriteFile works after Close.
	if closeErr := store.Close(); closeErr != nil {
		err = errors.Join(err, fmt.Errorf("closing the store: %w", closeErr))
	}
	if cfg.snapshot != "" {
		// Saved even if requests outlived shutdownTimeout: they may lose
		// their last change, but everyone else stays logged in.
		logger.Printf("saving %d sessions to %s", store.Len(), cfg.snapshot)
		if saveErr := store.WriteFile(cfg.snapshot); saveErr != nil {
			err = errors.Join(err, fmt.Errorf("saving the sessions to %s: %w", cfg.snapshot, saveErr))
		}
	}
	if err != nil {
		return err
	}
	logger.Print("stopped")
	return nil
}
