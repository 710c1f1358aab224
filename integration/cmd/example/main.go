// SPDX-License-Identifier: MIT

// Command example serves the original memstore README example, ported to scs
// v2: /put stores "Hello world!" in the session and /get writes it back.
//
//	cd integration && go run ./cmd/example
//	curl -c /tmp/c -b /tmp/c localhost:4000/put
//	curl -c /tmp/c -b /tmp/c localhost:4000/get
//
// Flags:
//
//	-addr     the TCP address to listen on (default ":4000"; ":0" picks a free port)
//	-cleanup  how often the janitor removes expired sessions (default 1m; 0 turns it off)
//
// It logs the address it listens on, and on SIGINT or SIGTERM stops accepting
// connections, lets requests in flight finish (http.Server.Shutdown), closes
// the store and exits with status 0. A second signal during shutdown exits at
// once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
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
	addr    string        // -addr: the TCP address to listen on
	cleanup time.Duration // -cleanup: the janitor's interval, 0 for none
}

// parseFlags parses args (without the program name) into a config. Usage and
// errors go to output. It returns flag.ErrHelp for -h and -help.
func parseFlags(name string, args []string, output io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.addr, "addr", ":4000", "the TCP `address` to listen on (\":0\" picks a free port)")
	fs.DurationVar(&cfg.cleanup, "cleanup", time.Minute, "how often the janitor removes expired sessions (0 turns it off)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintln(output, err)
		fs.Usage()
		return config{}, err
	}
	if cfg.cleanup < 0 {
		err := fmt.Errorf("-cleanup %v: must not be negative", cfg.cleanup)
		fmt.Fprintln(output, err)
		return config{}, err
	}
	return cfg, nil
}

// main parses the flags, then runs the server until SIGINT or SIGTERM.
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
	if err := run(ctx, cfg, logger); err != nil {
		logger.Print(err)
		os.Exit(1)
	}
}

// routes returns the application: /put and /get, wrapped in sm.LoadAndSave.
func routes(sm *scs.SessionManager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "message", "Hello world!")
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.GetString(r.Context(), "message"))
	})
	return sm.LoadAndSave(mux)
}

// run serves the application as cfg says until ctx is done, then shuts the
// server down gracefully and closes the store. It returns nil after a clean
// shutdown.
func run(ctx context.Context, cfg config, logger *log.Logger) error {
	store := memstore.New(cfg.cleanup)
	defer store.Close()

	sessionManager := scs.New()
	sessionManager.Store = store

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           routes(sessionManager),
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
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	store.Close() // stops the janitor; the deferred Close covers the error paths
	logger.Print("stopped")
	return nil
}
