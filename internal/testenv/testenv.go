// Package testenv gives tests the real infrastructure they need: a fresh
// PostgreSQL database per test and a real Temporal server. When either is
// missing the test fails with what to do; it never skips.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/worker"
)

// PostgresURL is the server tests create their databases on.
func PostgresURL() string {
	if u := os.Getenv("STEPCAST_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Logger discards logs unless STEPCAST_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("STEPCAST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Postgres creates a fresh, migrated database for the test, dropped when
// the test ends, and returns a store on it.
func Postgres(t testing.TB) *models.Store {
	t.Helper()
	store, err := models.Open(PostgresDatabase(t), "", Logger())
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// PostgresDatabase creates a fresh, migrated database for the test, dropped
// when the test ends, and returns its URL.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	admin, err := models.Open(PostgresURL(), "", Logger())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.Ping(ctx)
		cancel()
	}
	if err != nil {
		t.Fatalf("PostgreSQL is required at %s (set STEPCAST_TEST_POSTGRES_URL; on the dev machine start it with "+
			"`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`): %v", PostgresURL(), err)
	}
	name := "stepcast_test_" + randomHex(6)
	if err := admin.DB.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.DB.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error
		_ = admin.Close()
	})
	u, _ := url.Parse(PostgresURL())
	u.Path = "/" + name
	store, err := models.Open(u.String(), "", Logger())
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	defer store.Close()
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return u.String()
}

// SQLite opens a fresh embedded database in the test's temporary folder.
func SQLite(t testing.TB) *models.Store {
	t.Helper()
	store, err := models.Open("", filepath.Join(t.TempDir(), "stepcast.db"), Logger())
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

var (
	temporalOnce sync.Once
	temporalAddr string
	temporalErr  error
)

// TemporalAddress returns the address of a real Temporal server: the one in
// STEPCAST_TEST_TEMPORAL_ADDRESS, or a dev server started from bin/temporal
// (built by `make tools`) for this test binary, stopped when it exits (see
// Main).
func TemporalAddress(t testing.TB) string {
	t.Helper()
	temporalOnce.Do(func() {
		if a := os.Getenv("STEPCAST_TEST_TEMPORAL_ADDRESS"); a != "" {
			temporalAddr = a
			return
		}
		temporalAddr, temporalErr = startDevServer()
	})
	if temporalErr != nil {
		t.Fatalf("a real Temporal server is required: %v", temporalErr)
	}
	return temporalAddr
}

// Temporal returns a client of the real Temporal server with Stepcast's
// search attributes registered.
func Temporal(t testing.TB) client.Client {
	t.Helper()
	addr := TemporalAddress(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := worker.Dial(ctx, addr, "default", nil, Logger())
	if err != nil {
		t.Fatalf("Temporal at %s: %v", addr, err)
	}
	if err := worker.RegisterSearchAttributes(ctx, c, "default"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// devServer is the dev server this test binary started; exited is closed
// when it has exited.
var devServer struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// Main runs a test binary's tests and stops the dev server it started.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if devServer.cmd != nil {
		_ = devServer.cmd.Process.Kill()
		<-devServer.exited
	}
	return code
}

// RepoRoot is the folder with go.mod.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// startDevServer starts bin/temporal's dev server on a free port. Test
// binaries of several packages start theirs at the same time, and the port
// found free can be taken by another before the server binds it (the dev
// server also takes random ports of its own); a server that exits before it
// answers is started again on another port.
func startDevServer() (string, error) {
	bin := filepath.Join(RepoRoot(), "bin", "temporal")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s is missing: run `make tools` (or set STEPCAST_TEST_TEMPORAL_ADDRESS)", bin)
	}
	var errs []error
	for range 3 {
		addr, err := tryDevServer(bin)
		if err == nil {
			return addr, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

func tryDevServer(bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", fmt.Sprint(port), "--log-level", "error")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if os.Getenv("STEPCAST_TEST_LOG") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return "", fmt.Errorf("the Temporal dev server at %s exited: %s", addr, bytes.TrimSpace(out.Bytes()))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: nopLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
		}
		cancel()
		if err == nil {
			devServer.cmd, devServer.exited = cmd, exited
			return addr, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return "", fmt.Errorf("the Temporal dev server did not answer at %s within 60s", addr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// UserID returns a random LINE-shaped user ID.
func UserID() string { return "U" + strings.ToLower(randomHex(16)) }

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
