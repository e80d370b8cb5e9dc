package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/distill-dev/distill/serve"
)

func newServeCmd() *cobra.Command {
	var (
		addr    string
		cfg     serve.Config
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "serve MODEL",
		Short: "Serve a saved model (float32 or INT8) over HTTP with dynamic batching",
		Long: `Serve answers POST /v1/predict (JSON or little-endian float32 bodies)
for a saved model, batching concurrent requests into one model call, and
serves GET /healthz, GET /v1/model and Prometheus metrics at GET /metrics.
SIGINT or SIGTERM stops accepting requests, answers those already
accepted, and exits 0.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, info, err := serve.LoadProgram(args[0])
			if err != nil {
				return argFileError(err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			if cfg.MaxWait == 0 {
				cfg.MaxWait = -1 // the flag's 0 means never wait
			}
			cfg.Info = info
			cfg.Logger = log
			s, err := serve.New(p, cfg)
			if err != nil {
				return usageError{err}
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				s.Shutdown(context.Background())
				return fmt.Errorf("listen on %s: %w (pick another --addr)", addr, err)
			}
			// Tests and scripts read the bound address from this line
			// (with --addr 127.0.0.1:0 the port is chosen here).
			fmt.Fprintf(cmd.OutOrStdout(), "listening on %s\n", l.Addr())
			log.Info("serving", "model", args[0], "name", info.Name, "precision", info.Precision, "addr", l.Addr().String())
			served := make(chan error, 1)
			go func() { served <- s.Serve(l) }()
			select {
			case err := <-served:
				s.Shutdown(context.Background())
				return fmt.Errorf("serve: %w", err)
			case <-cmd.Context().Done():
			}
			log.Info("shutting down: answering the requests already accepted", "timeout", timeout)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				return shutdownError{fmt.Errorf("shutdown: requests still running after %v: %w", timeout, err)}
			}
			if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			log.Info("stopped", "answered", s.Answered())
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	f.IntVar(&cfg.MaxBatch, "max-batch", serve.DefaultMaxBatch, "most examples in one model call and in one request")
	f.DurationVar(&cfg.MaxWait, "max-wait", serve.DefaultMaxWait, "longest a batch that is not full waits for requests still being received; a lone request never waits (0: never wait)")
	f.IntVar(&cfg.MaxQueue, "max-queue", serve.DefaultMaxQueue, "most requests waiting; beyond it requests get 503 with Retry-After")
	f.Int64Var(&cfg.MaxBody, "max-body", serve.DefaultMaxBody, "largest request body in bytes; beyond it requests get 413")
	f.DurationVar(&timeout, "shutdown-timeout", 30*time.Second, "how long shutdown waits for accepted requests")
	return c
}
