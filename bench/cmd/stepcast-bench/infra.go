package main

// The infrastructure a run needs: a Temporal dev server of its own (or an
// external server given by -temporal-address) and a fresh PostgreSQL
// database, both removed when the run ends.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/stepcast/stepcast/bench/internal/benchkit"
)

// devServer is a `temporal server start-dev` process that this run started.
type devServer struct {
	cmd        *exec.Cmd
	addr       string
	metricsURL string
}

// startDevServer starts the Temporal CLI's dev server on free loopback
// ports, in memory (or in dbFile when set), and waits until it answers.
func startDevServer(ctx context.Context, bin, dbFile string, logw io.Writer) (*devServer, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s is missing: run `make tools`, or give -temporal-address", bin)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", strconv.Itoa(port), "--metrics-port", strconv.Itoa(mport), "--log-level", "error"}
	if dbFile != "" {
		args = append(args, "--db-filename", dbFile)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &devServer{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			s.stop()
			return nil, ctx.Err()
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := client.DialContext(cctx, client.Options{HostPort: s.addr, Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err == nil {
			_, err = c.CheckHealth(cctx, &client.CheckHealthRequest{})
			c.Close()
		}
		cancel()
		if err == nil {
			return s, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("the Temporal dev server did not answer at %s within 90s", s.addr)
}

func (s *devServer) stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// userID returns a random LINE-shaped user ID.
func userID() string { return "U" + benchkit.RandomHex(16) }

// scrapeMetrics reads a Prometheus text page and sums each metric name's
// samples (over all labels) whose name is in names; with names empty, all.
func scrapeMetrics(ctx context.Context, u string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		key := line[:sp]
		name := key
		if i := strings.IndexByte(key, '{'); i >= 0 {
			name = key[:i]
		}
		if len(want) > 0 && !want[name] {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
}

// scrapeByLabel sums the samples of one metric grouped by one label's value.
func scrapeByLabel(ctx context.Context, u, name, label string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prefix := name + "{"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		val := ""
		if i := strings.Index(line, label+`="`); i >= 0 {
			rest := line[i+len(label)+2:]
			if j := strings.IndexByte(rest, '"'); j >= 0 {
				val = rest[:j]
			}
		}
		out[val] += v
	}
	return out, sc.Err()
}
