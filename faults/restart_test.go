package faults_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
)

// devServer is a Temporal dev server of the test's own, with its state in
// a file so that it survives a restart.
type devServer struct {
	t    *testing.T
	addr string
	db   string
	p    *proc
}

func newDevServer(t *testing.T) *devServer {
	d := &devServer{t: t, addr: freeAddr(t), db: filepath.Join(t.TempDir(), "temporal.db")}
	d.start()
	return d
}

func (d *devServer) start() {
	port := d.addr[strings.LastIndex(d.addr, ":")+1:]
	bin := filepath.Join(testenv.RepoRoot(), "bin", "temporal")
	d.p = start(d.t, "temporal", nil, bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", port, "--db-filename", d.db, "--log-level", "error")
	waitFor(d.t, 60*time.Second, "Temporal to answer", func() bool {
		out, err := exec.Command(bin, "operator", "cluster", "health", "--address", d.addr).CombinedOutput()
		return err == nil && strings.Contains(string(out), "SERVING")
	})
}

// Temporal stopped while enrollments are due and restarted: nothing lost,
// nothing sent twice; follows received meanwhile wait in the inbox.
func TestTemporalRestart(t *testing.T) {
	tmp := newDevServer(t)
	s := newSystem(t, testenv.PostgresDatabase(t), tmp.addr)
	s.publish("4s", "2s")
	early := []string{testenv.UserID(), testenv.UserID(), testenv.UserID()}
	for _, u := range early {
		s.follow(u)
	}
	waitFor(t, 30*time.Second, "three enrollments", func() bool {
		var es struct{ Items []any }
		api(t, s.url, "GET", fmt.Sprintf("/api/v1/channels/%d/enrollments", s.channel), nil, &es)
		return len(es.Items) == 3
	})
	tmp.p.stop(syscall.SIGTERM)

	// Meanwhile: LINE's webhooks are still taken (the inbox), the API says
	// it is not ready, and nothing is sent.
	late := []string{testenv.UserID(), testenv.UserID()}
	for _, u := range late {
		if code := s.follow(u); code != http.StatusOK {
			t.Fatalf("follow while Temporal is down answered %d, want 200 (stored in the inbox)", code)
		}
	}
	waitFor(t, 20*time.Second, "readyz to report Temporal down", func() bool { return !httpOK(s.url + "/readyz") })
	time.Sleep(5 * time.Second) // past the first step's due time
	tmp.start()
	s.assertExactlyOnce(append(early, late...), 2, 3*time.Minute)
}

// pgCluster is a PostgreSQL server of the test's own, so that stopping it
// does not disturb other tests.
type pgCluster struct {
	t    *testing.T
	bin  string
	dir  string
	port string
	log  string
}

func runAsPostgres(args ...string) ([]byte, error) {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...).CombinedOutput()
}

func newPGCluster(t *testing.T) *pgCluster {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		t.Fatal("PostgreSQL server binaries (pg_ctl, initdb) are required: /usr/lib/postgresql/*/bin")
	}
	root, err := os.MkdirTemp("", "stepcast-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	_ = os.Chmod(root, 0o777)
	c := &pgCluster{t: t, bin: filepath.Dir(matches[0]), dir: filepath.Join(root, "data"), log: filepath.Join(root, "pg.log")}
	a := freeAddr(t)
	c.port = a[strings.LastIndex(a, ":")+1:]
	if out, err := runAsPostgres(filepath.Join(c.bin, "initdb"), "-D", c.dir, "-A", "trust", "-U", "postgres"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.start()
	t.Cleanup(func() { _, _ = runAsPostgres(filepath.Join(c.bin, "pg_ctl"), "-D", c.dir, "stop", "-m", "immediate") })
	return c
}

func (c *pgCluster) start() {
	out, err := runAsPostgres(filepath.Join(c.bin, "pg_ctl"), "-D", c.dir, "-l", c.log, "-w", "start",
		"-o", fmt.Sprintf("-p %s -c listen_addresses=127.0.0.1 -k %s", c.port, filepath.Dir(c.dir)))
	if err != nil {
		c.t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
}

func (c *pgCluster) stop() {
	if out, err := runAsPostgres(filepath.Join(c.bin, "pg_ctl"), "-D", c.dir, "-w", "stop", "-m", "fast"); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (c *pgCluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable", c.port)
}

// PostgreSQL stopped while enrollments are due and restarted: nothing lost,
// nothing sent twice; webhooks received meanwhile are refused with a 5xx,
// so LINE redelivers them, and the redeliveries are taken.
func TestPostgresRestart(t *testing.T) {
	pg := newPGCluster(t)
	s := newSystem(t, pg.url(), testenv.TemporalAddress(t))
	s.publish("4s", "2s")
	early := []string{testenv.UserID(), testenv.UserID(), testenv.UserID()}
	for _, u := range early {
		s.follow(u)
	}
	waitFor(t, 30*time.Second, "three enrollments", func() bool {
		var es struct{ Items []any }
		api(t, s.url, "GET", fmt.Sprintf("/api/v1/channels/%d/enrollments", s.channel), nil, &es)
		return len(es.Items) == 3
	})
	pg.stop()
	late := testenv.UserID()
	body := followBody(late, "01"+randomHex(12), false)
	if code := s.post(body); code < 500 {
		t.Fatalf("follow while the database is down answered %d, want 5xx so LINE redelivers", code)
	}
	time.Sleep(6 * time.Second) // past the first step's due time
	pg.start()
	waitFor(t, 60*time.Second, "the API to be ready again", func() bool { return httpOK(s.url + "/readyz") })
	// LINE redelivers the refused webhook.
	if code := s.post(body); code != http.StatusOK {
		t.Fatalf("redelivered follow answered %d", code)
	}
	s.assertExactlyOnce(append(early, late), 2, 3*time.Minute)
}
