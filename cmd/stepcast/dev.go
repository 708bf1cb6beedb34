package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/stepcast/stepcast/fakeline"
	"github.com/stepcast/stepcast/worker"
)

// devAdminToken is the admin token of dev mode when none is set.
const devAdminToken = "dev-admin-token"

// devDefaults gives dev mode friendlier defaults than production: readable
// logs and a known admin token.
func devDefaults(getenv func(string) string) func(string) string {
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		switch name {
		case "STEPCAST_LOG_FORMAT":
			return "text"
		case "STEPCAST_ADMIN_TOKEN":
			return devAdminToken
		case "STEPCAST_LINK_SECRET":
			return "dev-link-secret-not-for-production-use"
		}
		return ""
	}
}

// runDev runs everything on one machine: a Temporal dev server (unless
// TEMPORAL_ADDRESS names one), the fake LINE server (unless
// LINE_API_BASE_URL is set), the embedded database (unless DATABASE_URL is
// set), the worker and the API.
func runDev(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	if err := os.MkdirAll(cfg.DevDataDir, 0o755); err != nil {
		return err
	}
	if cfg.DatabaseURL == "" && cfg.SQLitePath == "data/stepcast.db" {
		cfg.SQLitePath = filepath.Join(cfg.DevDataDir, "stepcast.db")
	}
	g, ctx := errgroup.WithContext(ctx)

	if !cfg.temporalFromEnv {
		stop, err := startTemporalDevServer(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if !cfg.lineFromEnv {
		fake, err := fakeline.New()
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", cfg.FakeLineAddr)
		if err != nil {
			return fmt.Errorf("fake LINE server: %w", err)
		}
		cfg.LineAPIBaseURL = "http://" + l.Addr().String()
		g.Go(func() error { return serveListener(ctx, l, fake.Handler(), log.With("server", "fake-line")) })
	}

	d, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.store.Migrate(ctx); err != nil {
		return err
	}
	if err := worker.RegisterSearchAttributes(ctx, d.temporal, cfg.TemporalNamespace); err != nil {
		return err
	}
	w := d.worker()
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	srv, disp := d.api()
	l, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	g.Go(func() error { return serveListener(ctx, l, srv.Handler(), log) })
	g.Go(func() error { return disp.Run(ctx) })

	db := "embedded SQLite at " + cfg.SQLitePath
	if cfg.DatabaseURL != "" {
		db = "PostgreSQL (DATABASE_URL)"
	}
	fmt.Fprintf(stdout, `
Stepcast dev mode is running.
  API and webhooks  http://%s   (admin token: %s)
  Temporal Web UI   http://127.0.0.1:%d
  LINE API          %s
  database          %s
Walkthrough: README.md. Stop with Ctrl-C.

`, displayAddr(l.Addr()), maskToken(cfg.AdminToken), cfg.TemporalUIPort, cfg.LineAPIBaseURL, db)
	return g.Wait()
}

// startTemporalDevServer starts the pinned Temporal CLI's dev server with
// the Web UI and Stepcast's search attributes, keeping its state in the
// data folder so enrollments survive a restart of dev mode.
func startTemporalDevServer(ctx context.Context, cfg config, log *slog.Logger) (stop func(), err error) {
	if _, err := os.Stat(cfg.TemporalBin); err != nil {
		return nil, fmt.Errorf("the Temporal CLI is not at %s: run `make tools` (or `make dev`, which builds it)", cfg.TemporalBin)
	}
	host, port, err := net.SplitHostPort(cfg.TemporalAddress)
	if err != nil {
		return nil, fmt.Errorf("TEMPORAL_ADDRESS %q: %w", cfg.TemporalAddress, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	args := []string{"server", "start-dev", "--ip", host, "--port", port,
		"--ui-port", fmt.Sprint(cfg.TemporalUIPort), "--namespace", cfg.TemporalNamespace,
		"--db-filename", filepath.Join(cfg.DevDataDir, "temporal.db"), "--log-level", "warn"}
	logFile, err := os.OpenFile(filepath.Join(cfg.DevDataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.TemporalBin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Ctrl-C reaches us, and we stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start Temporal dev server: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	}
	log.Info("starting Temporal dev server", "address", cfg.TemporalAddress, "ui_port", cfg.TemporalUIPort, "log", logFile.Name())
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := client.DialContext(ctx, client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, Logger: quietLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
		}
		if err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, fmt.Errorf("the Temporal dev server did not answer at %s (see %s): %w", cfg.TemporalAddress, logFile.Name(), err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func displayAddr(a net.Addr) string {
	s := a.String()
	if strings.HasPrefix(s, "[::]:") {
		return "localhost:" + strings.TrimPrefix(s, "[::]:")
	}
	return s
}

func maskToken(t string) string {
	if t == devAdminToken {
		return t
	}
	return "from STEPCAST_ADMIN_TOKEN"
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
