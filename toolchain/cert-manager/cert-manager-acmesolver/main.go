// Command cert-manager-acmesolver answers one ACME HTTP-01 challenge: the controller
// runs it in a pod of its own per challenge, in the challenge's namespace, with the
// domain, token and key as arguments (--listen-port=8089 --domain=... --token=...
// --key=...), and routes /.well-known/acme-challenge/<token> on that domain to it
// through an Ingress or HTTPRoute. The server is pkg/issuer/acme/http/solver of
// github.com/cert-manager/cert-manager; upstream's command, a module of its own that
// the Go module proxy does not serve, only parses those flags and runs it, as this does.
package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cert-manager/cert-manager/pkg/issuer/acme/http/solver"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
)

func main() {
	s := &solver.HTTP01Solver{}
	// A flag set of our own: imported packages register flags of theirs on flag.CommandLine.
	flags := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	flags.IntVar(&s.ListenPort, "listen-port", 8089, "port to serve the challenge on")
	flags.StringVar(&s.Domain, "domain", "", "the domain being validated (the request's Host)")
	flags.StringVar(&s.Token, "token", "", "the challenge token (the last path element)")
	flags.StringVar(&s.Key, "key", "", "the key authorization to answer with")
	_ = flags.Parse(os.Args[1:]) // ExitOnError

	logf.InitLogs()
	log := logf.Log.WithName("acmesolver")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// The pod is deleted once the challenge is done: stop serving, give open requests
	// a few seconds.
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(shutdown); err != nil {
			log.Error(err, "shutting down")
		}
	}()
	if err := s.Listen(log); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error(err, "serving the challenge")
		logf.FlushLogs()
		os.Exit(1)
	}
	logf.FlushLogs()
}
