// Command stepcast runs Stepcast: `stepcast dev` for everything on one
// machine, `api` and `worker` for production, `migrate` for the schema.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // scenario time zones must not depend on the host's files

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"golang.org/x/sync/errgroup"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/apiserver"
	"github.com/stepcast/stepcast/enroll"
	"github.com/stepcast/stepcast/inbox"
	"github.com/stepcast/stepcast/links"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/worker"
)

const usage = `usage: stepcast <command> [arguments]

commands:
  dev          run everything on this machine: Temporal dev server with its Web UI,
               worker, API, embedded database and fake LINE (see README.md)
  api          run the admin API, the LINE webhook and the webhook inbox dispatcher
  worker       run the Temporal worker that executes enrollments
  migrate      create or update the database schema and register Temporal search attributes
  scenario     validate scenario files, or apply one to a running Stepcast
  webhook      send a signed follow or unfollow webhook to a running Stepcast (dev helper)
  healthcheck  exit 0 if URL answers 200 (for container health checks)

Configuration is by environment variables; README.md lists them.`

func main() {
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepcast:", err)
		os.Exit(1)
	}
}

// run is the whole program, so a test can run it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "webhook":
		return sendWebhook(ctx, args, stdout)
	case "scenario":
		return scenarioCmd(ctx, args, getenv, stdout)
	case "healthcheck":
		return healthcheck(ctx, args)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if cmd == "dev" {
		getenv = devDefaults(getenv)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr).With("cmd", cmd)
	switch cmd {
	case "dev":
		return runDev(ctx, cfg, log, stdout)
	case "api":
		return runAPI(ctx, cfg, log)
	case "worker":
		return runWorker(ctx, cfg, log)
	case "migrate":
		return runMigrate(ctx, cfg, log)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// deps are what every long-running command connects to.
type deps struct {
	cfg      config
	log      *slog.Logger
	metrics  *metrics.Metrics
	store    *models.Store
	temporal client.Client
}

func connect(ctx context.Context, cfg config, log *slog.Logger) (*deps, error) {
	if len(cfg.LinkSecret) < 32 {
		return nil, errors.New("STEPCAST_LINK_SECRET must be set, at least 32 characters, the same on api and worker: it signs tracked links")
	}
	d := &deps{cfg: cfg, log: log, metrics: metrics.New()}
	var err error
	if d.store, err = models.Open(cfg.DatabaseURL, cfg.SQLitePath, log); err != nil {
		return nil, err
	}
	if d.temporal, err = worker.Dial(ctx, cfg.TemporalAddress, cfg.TemporalNamespace, d.metrics, log); err != nil {
		_ = d.store.Close()
		return nil, err
	}
	return d, nil
}

func (d *deps) close() {
	d.temporal.Close()
	_ = d.store.Close()
}

func (d *deps) lineClient() *activities.LineClient {
	return &activities.LineClient{Endpoint: d.cfg.LineAPIBaseURL, HTTP: &http.Client{Timeout: 20 * time.Second}}
}

func (d *deps) enroll() *enroll.Service {
	return &enroll.Service{Store: d.store, Temporal: d.temporal, Namespace: d.cfg.TemporalNamespace, TaskQueue: d.cfg.TaskQueue, Metrics: d.metrics, Log: d.log}
}

// api returns the API server and the inbox dispatcher behind it.
func (d *deps) api() (*apiserver.Server, *inbox.Dispatcher) {
	svc := d.enroll()
	disp := inbox.NewDispatcher(d.store, svc, d.metrics, d.log)
	disp.Retention = d.cfg.InboxRetention
	srv := apiserver.New(apiserver.Config{AdminToken: d.cfg.AdminToken, MaxWebhookBytes: d.cfg.MaxWebhookBytes}, apiserver.Deps{
		Store: d.store, Temporal: d.temporal, Enroll: svc, Notify: disp.Notify,
		Sender: &activities.TestSender{Store: d.store, LINE: d.lineClient()},
		Links:  d.signer(), Metrics: d.metrics, Log: d.log,
	})
	return srv, disp
}

func (d *deps) signer() *links.Signer { return &links.Signer{Secret: []byte(d.cfg.LinkSecret)} }

func (d *deps) worker() sdkworker.Worker {
	acts := &activities.Activities{Store: d.store, LINE: d.lineClient(), Metrics: d.metrics,
		Links: &links.Rewriter{Signer: d.signer(), BaseURL: d.cfg.PublicURL}, Enroller: d.enroll()}
	return worker.New(d.temporal, d.cfg.TaskQueue, acts, worker.Options())
}

func runAPI(ctx context.Context, cfg config, log *slog.Logger) error {
	if cfg.AdminToken == "" {
		return errors.New("STEPCAST_ADMIN_TOKEN must be set: it is the bearer token of the admin API")
	}
	d, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.close()
	srv, disp := d.api()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(ctx, cfg.HTTPAddr, srv.Handler(), log) })
	g.Go(func() error { return disp.Run(ctx) })
	return g.Wait()
}

func runWorker(ctx context.Context, cfg config, log *slog.Logger) error {
	d, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.close()
	w := d.worker()
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	ops := apiserver.New(apiserver.Config{}, apiserver.Deps{Store: d.store, Temporal: d.temporal, Metrics: d.metrics, Log: log})
	log.Info("worker started", "task_queue", cfg.TaskQueue, "temporal", cfg.TemporalAddress)
	return serveHTTP(ctx, cfg.WorkerHTTPAddr, ops.OpsHandler(), log)
}

// runMigrate updates the schema and registers the search attributes. It
// waits for Temporal, which may still be setting itself up when a
// deployment starts.
func runMigrate(ctx context.Context, cfg config, log *slog.Logger) error {
	store, err := models.Open(cfg.DatabaseURL, cfg.SQLitePath, log)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	log.Info("database schema is up to date")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for {
		err := registerSearchAttributes(ctx, cfg, log)
		if err == nil {
			log.Info("search attributes registered", "namespace", cfg.TemporalNamespace)
			return nil
		}
		log.Warn("Temporal not ready; retrying", "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("register search attributes: %w", err)
		case <-time.After(3 * time.Second):
		}
	}
}

func registerSearchAttributes(ctx context.Context, cfg config, log *slog.Logger) error {
	c, err := worker.Dial(ctx, cfg.TemporalAddress, cfg.TemporalNamespace, nil, log)
	if err != nil {
		return err
	}
	defer c.Close()
	return worker.RegisterSearchAttributes(ctx, c, cfg.TemporalNamespace)
}

// serveHTTP serves until ctx ends, then shuts down gracefully: requests in
// flight get up to 10 seconds to finish.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return serveListener(ctx, l, h, log)
}

func serveListener(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("listening", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	return nil
}

func healthcheck(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: stepcast healthcheck URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", args[0], res.StatusCode)
	}
	return nil
}
