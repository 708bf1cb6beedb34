// Package deploy_test checks that the deployment files in the repository root
// (docker-compose.yml, Dockerfile, .dockerignore) and in deploy/ fit together.
// There is no Docker engine in CI, so the compose file is loaded with
// compose-go (the library behind `docker compose`) and the Dockerfile is
// parsed by a small reader below.
package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Service names of docker-compose.yml.
const (
	svcPostgres   = "postgres"
	svcTemporal   = "temporal"
	svcTemporalUI = "temporal-ui"
	svcMigrate    = "stepcast-migrate"
	svcAPI        = "stepcast-api"
	svcWorker     = "stepcast-worker"
)

var allServices = []string{svcPostgres, svcTemporal, svcTemporalUI, svcMigrate, svcAPI, svcWorker}

// stepcastServices run the Stepcast image, with the subcommand each must run.
var stepcastServices = map[string]string{
	svcMigrate: "migrate",
	svcAPI:     "api",
	svcWorker:  "worker",
}

// knownSubcommands of the stepcast binary usable as a compose `command`
// (`dev` is all-in-one and deliberately not allowed here).
var knownSubcommands = []string{"api", "worker", "migrate"}

// knownVariables is every ${VAR} docker-compose.yml may interpolate, with its
// meaning. Add new variables here and in deploy/env.example.
var knownVariables = map[string]string{
	"STEPCAST_ADMIN_TOKEN":         "bearer token of the admin API (required)",
	"STEPCAST_PUBLIC_URL":          "external base URL of stepcast-api, for tracked links (required)",
	"STEPCAST_LINK_SECRET":         "key that signs tracked links, the same on api and worker (required)",
	"POSTGRES_PASSWORD":            "PostgreSQL superuser password (required)",
	"STEPCAST_DB_PASSWORD":         "password of the stepcast database role (required)",
	"TEMPORAL_DB_PASSWORD":         "password of the temporal database role (required)",
	"STEPCAST_IMAGE":               "tag of the built Stepcast image",
	"TEMPORAL_NAMESPACE":           "Temporal namespace used by Stepcast and created by auto-setup",
	"TEMPORAL_NAMESPACE_RETENTION": "retention of that namespace",
	"STEPCAST_TASK_QUEUE":          "Temporal task queue",
	"LINE_API_BASE_URL":            "LINE Messaging API base URL",
	"STEPCAST_LOG_LEVEL":           "log level",
	"STEPCAST_LOG_FORMAT":          "log format",
}

// requiredVariables must be set (${VAR:?...}); loading fails without them.
var requiredVariables = []string{
	"STEPCAST_ADMIN_TOKEN",
	"STEPCAST_PUBLIC_URL",
	"STEPCAST_LINK_SECRET",
	"POSTGRES_PASSWORD",
	"STEPCAST_DB_PASSWORD",
	"TEMPORAL_DB_PASSWORD",
}

const (
	testDBPassword = "stepcast-db-secret"
	testPublicURL  = "https://stepcast.example.test"
)

// requiredEnv returns values for every required variable, as an operator's
// .env would.
func requiredEnv() map[string]string {
	return map[string]string{
		"STEPCAST_ADMIN_TOKEN": "test-admin-token",
		"STEPCAST_PUBLIC_URL":  testPublicURL,
		"STEPCAST_LINK_SECRET": "test-link-secret-0123456789abcdef0123",
		"POSTGRES_PASSWORD":    "postgres-secret",
		"STEPCAST_DB_PASSWORD": testDBPassword,
		"TEMPORAL_DB_PASSWORD": "temporal-db-secret",
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	require.NoError(t, err, "reading %s", rel)
	return string(b)
}

func configDetails(t *testing.T, env map[string]string) types.ConfigDetails {
	t.Helper()
	root := repoRoot(t)
	file := filepath.Join(root, "docker-compose.yml")
	content, err := os.ReadFile(file)
	require.NoError(t, err)
	return types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: content}},
		// Only what is given here: the test must not depend on the
		// developer's shell environment or a local .env file.
		Environment: types.Mapping(env),
	}
}

// loadCompose loads docker-compose.yml the way `docker compose` would
// (interpolation, schema validation, normalization, consistency checks).
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	return loader.LoadWithContext(context.Background(), configDetails(t, env), func(o *loader.Options) {
		o.SetProjectName("stepcast", true)
	})
}

func mustLoad(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(t, requiredEnv())
	require.NoError(t, err, "docker-compose.yml must load with the required variables set")
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	require.NoError(t, err, "service %q", name)
	return s
}

func envValue(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	require.True(t, ok, "service %s: environment %s is not set", s.Name, key)
	require.NotNil(t, v, "service %s: environment %s has no value", s.Name, key)
	return *v
}

// splitHostPort splits "host:port" and checks the port is numeric.
func splitHostPort(t *testing.T, what, addr string) (string, uint32) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err, "%s: %q is not host:port", what, addr)
	n, err := strconv.ParseUint(port, 10, 16)
	require.NoError(t, err, "%s: port of %q", what, addr)
	return host, uint32(n)
}

// containerPorts lists the ports a service makes reachable to other services.
func containerPorts(t *testing.T, s types.ServiceConfig) []uint32 {
	t.Helper()
	var ports []uint32
	for _, p := range s.Ports {
		ports = append(ports, p.Target)
	}
	for _, e := range s.Expose {
		n, err := strconv.ParseUint(e, 10, 16)
		require.NoError(t, err, "service %s: expose %q", s.Name, e)
		ports = append(ports, uint32(n))
	}
	return ports
}

func publishedPort(s types.ServiceConfig, target uint32) (types.ServicePortConfig, bool) {
	for _, p := range s.Ports {
		if p.Target == target && p.Published != "" {
			return p, true
		}
	}
	return types.ServicePortConfig{}, false
}

func TestComposeLoadsWithAllServices(t *testing.T) {
	p := mustLoad(t)
	assert.ElementsMatch(t, allServices, p.ServiceNames())

	for _, name := range []string{svcPostgres, svcTemporal, svcTemporalUI} {
		s := service(t, p, name)
		require.NotEmpty(t, s.Image, "service %s needs an image", name)
		repo, tag, ok := strings.Cut(s.Image, ":")
		assert.True(t, ok && tag != "" && tag != "latest" && !strings.Contains(tag, "/"),
			"service %s: image %q must be pinned to a tag", name, s.Image)
		assert.NotEmpty(t, repo)
	}
	assert.True(t, strings.HasPrefix(service(t, p, svcTemporal).Image, "temporalio/auto-setup:"))
	assert.True(t, strings.HasPrefix(service(t, p, svcTemporalUI).Image, "temporalio/ui:"))
	assert.True(t, strings.HasPrefix(service(t, p, svcPostgres).Image, "postgres:"))

	// The postgres data must survive container re-creation.
	pg := service(t, p, svcPostgres)
	var hasData bool
	for _, v := range pg.Volumes {
		if v.Target == "/var/lib/postgresql/data" {
			hasData = true
			assert.Equal(t, types.VolumeTypeVolume, v.Type, "postgres data should be a named volume")
			assert.Contains(t, p.Volumes, v.Source, "postgres data volume must be declared")
		}
	}
	assert.True(t, hasData, "postgres needs a volume at /var/lib/postgresql/data")
}

func TestTemporalUI(t *testing.T) {
	p := mustLoad(t)
	ui := service(t, p, svcTemporalUI)

	port, ok := publishedPort(ui, 8080)
	require.True(t, ok, "temporal-ui must publish its container port 8080")
	assert.Equal(t, "8233", port.Published, "temporal-ui must be published on host port 8233")

	host, tport := splitHostPort(t, "temporal-ui TEMPORAL_ADDRESS", envValue(t, ui, "TEMPORAL_ADDRESS"))
	assert.Equal(t, svcTemporal, host, "temporal-ui must reach Temporal by its service name")
	assert.Equal(t, uint32(7233), tport)
	assert.Contains(t, containerPorts(t, service(t, p, svcTemporal)), tport,
		"temporal-ui points at a port the temporal service does not expose")
}

func TestStepcastTemporalSettings(t *testing.T) {
	p := mustLoad(t)
	temporal := service(t, p, svcTemporal)
	assert.Contains(t, containerPorts(t, temporal), uint32(7233), "temporal must expose 7233")
	for name := range stepcastServices {
		s := service(t, p, name)
		assert.Equal(t, "temporal:7233", envValue(t, s, "TEMPORAL_ADDRESS"), "service %s", name)
		// auto-setup creates DEFAULT_NAMESPACE; Stepcast must use that one.
		assert.Equal(t, envValue(t, temporal, "DEFAULT_NAMESPACE"), envValue(t, s, "TEMPORAL_NAMESPACE"),
			"service %s: TEMPORAL_NAMESPACE must be the namespace auto-setup creates", name)
		assert.Equal(t, "stepcast", envValue(t, s, "STEPCAST_TASK_QUEUE"), "service %s", name)
	}
	// api (starter) and worker must agree on namespace and task queue.
	api, worker := service(t, p, svcAPI), service(t, p, svcWorker)
	for _, key := range []string{"TEMPORAL_NAMESPACE", "STEPCAST_TASK_QUEUE", "DATABASE_URL"} {
		assert.Equal(t, envValue(t, api, key), envValue(t, worker, key), key)
	}
}

// initScript is what deploy/postgres/init/*.sh creates.
type initScript struct {
	roles     []string
	databases map[string]string // database -> owner
	envVars   []string          // ${VAR:?} the script requires
}

var (
	reCreateRole = regexp.MustCompile(`(?i)\bCREATE\s+(?:ROLE|USER)\s+"?([A-Za-z_][A-Za-z0-9_]*)"?`)
	reCreateDB   = regexp.MustCompile(`(?i)\bCREATE\s+DATABASE\s+"?([A-Za-z_][A-Za-z0-9_]*)"?(?:\s+(?:WITH\s+)?OWNER\s*=?\s*"?([A-Za-z_][A-Za-z0-9_]*)"?)?`)
	reShRequired = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*):\?`)
)

func parseInitScripts(t *testing.T, files ...string) initScript {
	t.Helper()
	out := initScript{databases: map[string]string{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		src := string(b)
		for _, m := range reCreateRole.FindAllStringSubmatch(src, -1) {
			out.roles = append(out.roles, m[1])
		}
		for _, m := range reCreateDB.FindAllStringSubmatch(src, -1) {
			out.databases[m[1]] = m[2]
		}
		for _, m := range reShRequired.FindAllStringSubmatch(src, -1) {
			out.envVars = append(out.envVars, m[1])
		}
	}
	return out
}

// postgresInit finds the init scripts mounted into the postgres service and
// parses them.
func postgresInit(t *testing.T, p *types.Project) initScript {
	t.Helper()
	pg := service(t, p, svcPostgres)
	var files []string
	for _, v := range pg.Volumes {
		if !strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/") {
			continue
		}
		require.Equal(t, types.VolumeTypeBind, v.Type, "init script %s must be a bind mount", v.Target)
		require.FileExists(t, v.Source, "postgres init script mounted at %s", v.Target)
		require.True(t, strings.HasPrefix(v.Source, filepath.Join(repoRoot(t), "deploy")+string(filepath.Separator)),
			"init script %s should live under deploy/", v.Source)
		require.True(t, strings.HasSuffix(v.Target, ".sh") || strings.HasSuffix(v.Target, ".sql"),
			"postgres only runs *.sh and *.sql init files: %s", v.Target)
		assert.True(t, v.ReadOnly, "init script should be mounted read-only")
		files = append(files, v.Source)
	}
	require.NotEmpty(t, files, "postgres needs an init script under /docker-entrypoint-initdb.d/")
	init := parseInitScripts(t, files...)
	require.NotEmpty(t, init.databases, "init script creates no database")
	return init
}

func TestPostgresInitScriptAndDSNs(t *testing.T) {
	p := mustLoad(t)
	init := postgresInit(t, p)
	pg := service(t, p, svcPostgres)

	// The init script reads its passwords from the postgres container env.
	for _, v := range init.envVars {
		assert.NotEmpty(t, envValue(t, pg, v), "postgres env %s (needed by the init script)", v)
	}

	// Healthcheck: pg_isready, which the other services wait on.
	require.NotNil(t, pg.HealthCheck, "postgres needs a healthcheck")
	assert.Contains(t, strings.Join(pg.HealthCheck.Test, " "), "pg_isready")

	// Temporal persistence and visibility live in databases the script creates.
	temporal := service(t, p, svcTemporal)
	assert.Equal(t, "postgres12", envValue(t, temporal, "DB"))
	assert.Equal(t, svcPostgres, envValue(t, temporal, "POSTGRES_SEEDS"))
	assert.Equal(t, "5432", envValue(t, temporal, "DB_PORT"))
	tUser := envValue(t, temporal, "POSTGRES_USER")
	assert.Contains(t, init.roles, tUser, "temporal's POSTGRES_USER is not created by the init script")
	assert.Equal(t, requiredEnv()["TEMPORAL_DB_PASSWORD"], envValue(t, temporal, "POSTGRES_PWD"))
	assert.Equal(t, envValue(t, pg, "TEMPORAL_DB_PASSWORD"), envValue(t, temporal, "POSTGRES_PWD"))
	temporalDBs := []string{envValue(t, temporal, "DBNAME"), envValue(t, temporal, "VISIBILITY_DBNAME")}
	assert.NotEqual(t, temporalDBs[0], temporalDBs[1])
	for _, db := range temporalDBs {
		owner, ok := init.databases[db]
		if assert.True(t, ok, "temporal database %q is not created by the init script", db) {
			assert.Equal(t, tUser, owner, "database %s must be owned by %s (schema setup)", db, tUser)
		}
	}
	if envValue(t, temporal, "SKIP_DB_CREATE") != "true" {
		t.Errorf("temporal: SKIP_DB_CREATE must be true, the init script creates the databases")
	}

	// Stepcast DSNs.
	for name := range stepcastServices {
		s := service(t, p, name)
		dsn := envValue(t, s, "DATABASE_URL")
		u, err := url.Parse(dsn)
		require.NoError(t, err, "service %s DATABASE_URL", name)
		assert.Contains(t, []string{"postgres", "postgresql"}, u.Scheme, "service %s", name)
		assert.Equal(t, svcPostgres, u.Hostname(), "service %s: DATABASE_URL host must be the postgres service", name)
		assert.Equal(t, "5432", u.Port(), "service %s", name)
		db := strings.TrimPrefix(u.Path, "/")
		owner, ok := init.databases[db]
		assert.True(t, ok, "service %s: database %q is not created by the init script (have %v)", name, db, init.databases)
		assert.NotContains(t, temporalDBs, db, "Stepcast must not share Temporal's databases")
		require.NotNil(t, u.User, "service %s: DATABASE_URL has no user", name)
		assert.Contains(t, init.roles, u.User.Username(), "service %s: role of DATABASE_URL not created by the init script", name)
		assert.Equal(t, owner, u.User.Username(), "service %s: the app role should own its database (migrations)", name)
		pw, _ := u.User.Password()
		assert.Equal(t, testDBPassword, pw, "service %s: DATABASE_URL password must come from STEPCAST_DB_PASSWORD", name)
		assert.Equal(t, "disable", u.Query().Get("sslmode"), "service %s: compose-internal traffic, sslmode", name)
	}
}

func TestTemporalDynamicConfig(t *testing.T) {
	p := mustLoad(t)
	temporal := service(t, p, svcTemporal)
	rel := envValue(t, temporal, "DYNAMIC_CONFIG_FILE_PATH")
	// auto-setup resolves it relative to /etc/temporal.
	target := rel
	if !path.IsAbs(target) {
		target = path.Join("/etc/temporal", rel)
	}
	var found bool
	for _, v := range temporal.Volumes {
		if v.Target == target {
			found = true
			require.FileExists(t, v.Source)
			assert.True(t, v.ReadOnly)
		}
	}
	assert.True(t, found, "DYNAMIC_CONFIG_FILE_PATH %s is not mounted into temporal", target)
}

func TestPorts(t *testing.T) {
	p := mustLoad(t)
	api := service(t, p, svcAPI)
	_, apiPort := splitHostPort(t, "STEPCAST_HTTP_ADDR", envValue(t, api, "STEPCAST_HTTP_ADDR"))
	assert.Equal(t, uint32(8080), apiPort)
	port, ok := publishedPort(api, apiPort)
	require.True(t, ok, "stepcast-api must publish its HTTP port %d", apiPort)
	assert.Equal(t, "8080", port.Published)
	assert.Equal(t, "tcp", port.Protocol)

	worker := service(t, p, svcWorker)
	_, workerPort := splitHostPort(t, "STEPCAST_WORKER_HTTP_ADDR", envValue(t, worker, "STEPCAST_WORKER_HTTP_ADDR"))
	assert.Equal(t, uint32(8081), workerPort)
	assert.Contains(t, containerPorts(t, worker), workerPort, "worker metrics port must be reachable in the network")

	// No two services may claim the same host port.
	seen := map[string]string{}
	for _, s := range p.Services {
		for _, pc := range s.Ports {
			if pc.Published == "" {
				continue
			}
			key := pc.HostIP + ":" + pc.Published + "/" + pc.Protocol
			if other, dup := seen[key]; dup {
				t.Errorf("host port %s published by both %s and %s", key, other, s.Name)
			}
			seen[key] = s.Name
		}
	}
}

func TestStepcastEnvironment(t *testing.T) {
	p := mustLoad(t)
	for name := range stepcastServices {
		s := service(t, p, name)
		for _, key := range []string{
			"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "STEPCAST_TASK_QUEUE",
			"LINE_API_BASE_URL", "STEPCAST_PUBLIC_URL", "STEPCAST_LOG_LEVEL", "STEPCAST_LOG_FORMAT",
		} {
			assert.NotEmpty(t, envValue(t, s, key), "service %s: %s", name, key)
		}
		assert.Equal(t, testPublicURL, envValue(t, s, "STEPCAST_PUBLIC_URL"), "service %s", name)
		assert.Equal(t, "https://api.line.me", envValue(t, s, "LINE_API_BASE_URL"), "service %s", name)
		assert.Equal(t, "info", envValue(t, s, "STEPCAST_LOG_LEVEL"), "service %s", name)
		assert.Equal(t, "json", envValue(t, s, "STEPCAST_LOG_FORMAT"), "service %s", name)
		if name == svcAPI {
			assert.Equal(t, "test-admin-token", envValue(t, s, "STEPCAST_ADMIN_TOKEN"))
		} else {
			assert.NotContains(t, s.Environment, "STEPCAST_ADMIN_TOKEN",
				"service %s does not need the admin token; keep the secret in stepcast-api", name)
		}
	}
}

func TestDependsOn(t *testing.T) {
	p := mustLoad(t)
	want := map[string]map[string]string{
		svcPostgres:   {},
		svcTemporal:   {svcPostgres: types.ServiceConditionHealthy},
		svcTemporalUI: {svcTemporal: types.ServiceConditionStarted},
		svcMigrate: {
			svcPostgres: types.ServiceConditionHealthy,
			svcTemporal: types.ServiceConditionStarted,
		},
		svcAPI:    {svcMigrate: types.ServiceConditionCompletedSuccessfully},
		svcWorker: {svcMigrate: types.ServiceConditionCompletedSuccessfully},
	}
	for name, deps := range want {
		s := service(t, p, name)
		got := map[string]string{}
		for dep, d := range s.DependsOn {
			got[dep] = d.Condition
		}
		assert.Equal(t, deps, got, "depends_on of %s", name)
	}

	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			target := service(t, p, dep)
			switch d.Condition {
			case types.ServiceConditionHealthy:
				assert.True(t, target.HealthCheck != nil && !target.HealthCheck.Disable && len(target.HealthCheck.Test) > 0,
					"%s waits for %s to be healthy but %s has no healthcheck", s.Name, dep, dep)
			case types.ServiceConditionCompletedSuccessfully:
				assert.Equal(t, "no", target.Restart,
					"%s waits for %s to complete, so %s must not restart", s.Name, dep, dep)
			}
		}
	}
	assert.Equal(t, "no", service(t, p, svcMigrate).Restart)
	for _, name := range []string{svcPostgres, svcTemporal, svcTemporalUI, svcAPI, svcWorker} {
		assert.Contains(t, []string{"always", "unless-stopped", "on-failure"}, service(t, p, name).Restart,
			"long-running service %s should restart", name)
	}
}

func TestStepcastImageAndCommands(t *testing.T) {
	p := mustLoad(t)
	df := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	entrypoint := df.entrypoint(t)
	root := repoRoot(t)

	var image string
	for name, sub := range stepcastServices {
		s := service(t, p, name)
		require.NotNil(t, s.Build, "service %s must build the Stepcast image", name)
		assert.Equal(t, root, filepath.Clean(s.Build.Context), "service %s: build context must be the repo root", name)
		assert.Equal(t, "Dockerfile", s.Build.Dockerfile, "service %s", name)
		assert.Empty(t, s.Entrypoint, "service %s must keep the image ENTRYPOINT", name)
		if image == "" {
			image = s.Image
		}
		assert.Equal(t, image, s.Image, "all Stepcast services run the same image")

		require.Len(t, s.Command, 1, "service %s: command must be one subcommand", name)
		assert.Contains(t, knownSubcommands, s.Command[0], "service %s", name)
		assert.Equal(t, sub, s.Command[0], "service %s runs the wrong subcommand", name)

		assert.True(t, s.ReadOnly, "service %s: read-only root filesystem", name)
		assert.Contains(t, s.CapDrop, "ALL", "service %s", name)
	}
	assert.NotEmpty(t, image, "Stepcast services need an image name so it is built once and shared")

	// Healthchecks run the binary itself (the image has no shell or curl):
	// `stepcast healthcheck URL` must hit the port the service listens on.
	for name, key := range map[string]string{svcAPI: "STEPCAST_HTTP_ADDR", svcWorker: "STEPCAST_WORKER_HTTP_ADDR"} {
		s := service(t, p, name)
		require.NotNil(t, s.HealthCheck, "service %s needs a healthcheck", name)
		test := s.HealthCheck.Test
		require.Len(t, test, 4, "service %s healthcheck: %v", name, test)
		assert.Equal(t, "CMD", test[0], "service %s: no shell in a distroless image, use CMD", name)
		assert.Equal(t, entrypoint, test[1], "service %s: healthcheck must run the binary the image installs", name)
		assert.Equal(t, "healthcheck", test[2], "service %s", name)
		u, err := url.Parse(test[3])
		require.NoError(t, err)
		assert.Equal(t, "http", u.Scheme)
		assert.Contains(t, []string{"127.0.0.1", "localhost"}, u.Hostname())
		_, listen := splitHostPort(t, key, envValue(t, s, key))
		assert.Equal(t, strconv.Itoa(int(listen)), u.Port(), "service %s: healthcheck port vs %s", name, key)
		assert.Contains(t, []string{"/healthz", "/readyz"}, u.Path)
	}
	assert.Equal(t, "/readyz", mustURLPath(t, service(t, p, svcAPI).HealthCheck.Test[3]))
}

func mustURLPath(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Path
}

// --- Dockerfile -----------------------------------------------------------

type instruction struct {
	cmd  string // upper case
	args string
}

type stage struct {
	name  string
	image string
	insts []instruction
}

type dockerfile struct {
	stages []stage
}

var reVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// parseDockerfile reads the subset of Dockerfile syntax this repo uses:
// line continuations, comments, global ARG defaults, FROM ... AS name.
func parseDockerfile(t *testing.T, src string) dockerfile {
	t.Helper()
	var (
		df      dockerfile
		global  = map[string]string{}
		logical []string
		cur     strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(strings.TrimSpace(rest))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(line)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	require.NoError(t, sc.Err())
	require.Zero(t, cur.Len(), "Dockerfile ends inside a line continuation")

	expand := func(s string) string {
		return reVar.ReplaceAllStringFunc(s, func(m string) string {
			sub := reVar.FindStringSubmatch(m)
			name := sub[1] + sub[2]
			if v, ok := global[name]; ok {
				return v
			}
			return m
		})
	}
	for _, l := range logical {
		cmd, args, _ := strings.Cut(l, " ")
		cmd = strings.ToUpper(cmd)
		args = strings.TrimSpace(args)
		switch {
		case cmd == "ARG" && len(df.stages) == 0:
			k, v, _ := strings.Cut(args, "=")
			global[k] = v
		case cmd == "FROM":
			fields := strings.Fields(args)
			var rest []string
			for _, f := range fields {
				if !strings.HasPrefix(f, "--") {
					rest = append(rest, f)
				}
			}
			require.NotEmpty(t, rest, "FROM without image: %q", l)
			st := stage{image: expand(rest[0])}
			if len(rest) == 3 && strings.EqualFold(rest[1], "AS") {
				st.name = rest[2]
			}
			df.stages = append(df.stages, st)
		default:
			require.NotEmpty(t, df.stages, "instruction before FROM: %q", l)
			last := &df.stages[len(df.stages)-1]
			last.insts = append(last.insts, instruction{cmd: cmd, args: args})
		}
	}
	require.GreaterOrEqual(t, len(df.stages), 2, "Dockerfile must be multi-stage")
	return df
}

func (d dockerfile) final() stage { return d.stages[len(d.stages)-1] }

func (d dockerfile) stage(ref string) (stage, bool) {
	for i, s := range d.stages {
		if s.name == ref || strconv.Itoa(i) == ref {
			return s, true
		}
	}
	return stage{}, false
}

// entrypoint returns the final stage's exec-form ENTRYPOINT binary.
func (d dockerfile) entrypoint(t *testing.T) string {
	t.Helper()
	var ep []string
	for _, in := range d.final().insts {
		if in.cmd == "ENTRYPOINT" {
			ep = nil
			require.NoError(t, json.Unmarshal([]byte(in.args), &ep),
				"ENTRYPOINT must use the exec (JSON) form: %s", in.args)
		}
	}
	require.Len(t, ep, 1, "final stage ENTRYPOINT must be just the binary")
	return ep[0]
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	final := df.final()

	assert.True(t, strings.HasPrefix(final.image, "gcr.io/distroless/static"),
		"final stage should be distroless/static, got %s", final.image)
	runsAsNonRoot := strings.HasSuffix(final.image, ":nonroot")
	for _, in := range final.insts {
		if in.cmd == "USER" {
			user, _, _ := strings.Cut(in.args, ":")
			runsAsNonRoot = user != "root" && user != "0"
		}
		assert.NotEqual(t, "RUN", in.cmd, "the final (distroless) stage has no shell to RUN with")
	}
	assert.True(t, runsAsNonRoot, "final image must not run as root")

	var exposed []string
	for _, in := range final.insts {
		if in.cmd == "EXPOSE" {
			exposed = append(exposed, strings.Fields(in.args)...)
		}
	}
	assert.Subset(t, exposed, []string{"8080", "8081"})

	// The binary the final stage copies must be the one `go build -o` writes,
	// and the ENTRYPOINT must be where it lands.
	entrypoint := df.entrypoint(t)
	var copied bool
	for _, in := range final.insts {
		if in.cmd != "COPY" {
			continue
		}
		fields := strings.Fields(in.args)
		var from string
		var paths []string
		for _, f := range fields {
			if v, ok := strings.CutPrefix(f, "--from="); ok {
				from = v
			} else if !strings.HasPrefix(f, "--") {
				paths = append(paths, f)
			}
		}
		if from == "" || len(paths) != 2 {
			continue
		}
		dst := paths[1]
		if strings.HasSuffix(dst, "/") {
			dst = path.Join(dst, path.Base(paths[0]))
		}
		if dst != entrypoint {
			continue
		}
		build, ok := df.stage(from)
		require.True(t, ok, "COPY --from=%s: no such stage", from)
		out := goBuildOutput(t, build)
		assert.Equal(t, out, paths[0], "final stage copies %s but go build writes %s", paths[0], out)
		copied = true
	}
	assert.True(t, copied, "final stage must COPY --from the build stage to the ENTRYPOINT %s", entrypoint)
}

var reGoBuildOut = regexp.MustCompile(`(?:^|\s)-o[ =](\S+)`)

// goBuildOutput checks the build stage and returns the `go build -o` path.
func goBuildOutput(t *testing.T, st stage) string {
	t.Helper()
	img, tag, _ := strings.Cut(st.image, ":")
	assert.Equal(t, "golang", img, "build stage image")
	imgGo, _, _ := strings.Cut(tag, "-")
	modGo := goModVersion(t)
	assert.True(t, goVersionCovers(imgGo, modGo),
		"build image golang:%s is older than go.mod's go %s (the image has GOTOOLCHAIN=local)", tag, modGo)

	// Layer caching: COPY go.mod go.sum -> RUN go mod download -> COPY . . -> RUN go build.
	step := 0
	var out string
	for _, in := range st.insts {
		switch {
		case step == 0 && in.cmd == "COPY" && strings.Contains(in.args, "go.mod") && strings.Contains(in.args, "go.sum"):
			step = 1
		case step == 1 && in.cmd == "RUN" && strings.Contains(in.args, "go mod download"):
			step = 2
		case step == 2 && in.cmd == "COPY" && strings.HasPrefix(in.args, ". "):
			step = 3
		case step == 3 && in.cmd == "RUN" && strings.Contains(in.args, "go build"):
			step = 4
			assert.Contains(t, in.args, "CGO_ENABLED=0")
			assert.Contains(t, in.args, "-trimpath")
			assert.Regexp(t, `(?:^|\s)\./cmd/stepcast(?:\s|$)`, in.args, "must build ./cmd/stepcast")
			m := reGoBuildOut.FindStringSubmatch(in.args)
			require.NotNil(t, m, "go build needs -o")
			out = m[1]
		}
	}
	require.Equal(t, 4, step,
		"build stage must COPY go.mod go.sum, RUN go mod download, COPY . ., RUN go build (in that order); reached step %d", step)
	return out
}

func goModVersion(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(readRepoFile(t, "go.mod"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

// goVersionCovers reports whether a golang image of version img (e.g. "1.26"
// floating, or "1.26.8") satisfies a go.mod directive mod (e.g. "1.26.8").
func goVersionCovers(img, mod string) bool {
	a, b := strings.Split(img, "."), strings.Split(mod, ".")
	for i := range b {
		if i >= len(a) {
			return true // floating tag: latest patch of that line
		}
		x, err1 := strconv.Atoi(a[i])
		y, err2 := strconv.Atoi(b[i])
		if err1 != nil || err2 != nil {
			return false
		}
		if x != y {
			return x > y
		}
	}
	return true
}

func TestGoVersionCovers(t *testing.T) {
	assert.True(t, goVersionCovers("1.26.8", "1.26.8"))
	assert.True(t, goVersionCovers("1.26", "1.26.8"))
	assert.True(t, goVersionCovers("1.27", "1.26.8"))
	assert.False(t, goVersionCovers("1.26.7", "1.26.8"))
	assert.False(t, goVersionCovers("1.25", "1.26"))
	assert.False(t, goVersionCovers("latest", "1.26"))
}

// --- .dockerignore --------------------------------------------------------

func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, line := range strings.Split(readRepoFile(t, ".dockerignore"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		patterns = append(patterns, strings.TrimSuffix(line, "/"))
	}
	// excluded approximates the Docker matcher (filepath.Match per path
	// prefix, "**/" matching any depth, later "!" patterns re-including).
	excluded := func(p string) bool {
		ex := false
		for _, pat := range patterns {
			neg := strings.HasPrefix(pat, "!")
			pat = strings.TrimPrefix(pat, "!")
			if dockerignoreMatch(pat, p) {
				ex = !neg
			}
		}
		return ex
	}
	for _, keep := range []string{
		"go.mod", "go.sum", "cmd/stepcast/main.go", "internal/engine/engine.go",
		"internal/store/migrations/0001_init.sql", "api/openapi.yaml", "templates/mail.html",
	} {
		assert.False(t, excluded(keep), ".dockerignore must not exclude %s", keep)
	}
	for _, drop := range []string{
		".git/HEAD", ".env", "bin/stepcast", "stepcast.db", "data/dev.db", "deploy/compose_test.go",
	} {
		assert.True(t, excluded(drop), ".dockerignore should exclude %s", drop)
	}
}

func dockerignoreMatch(pattern, p string) bool {
	parts := strings.Split(p, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if ok, _ := path.Match(pattern, prefix); ok {
			return true
		}
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for j := 0; j < i; j++ {
				if ok, _ := path.Match(rest, strings.Join(parts[j:i], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}

// --- Variables ------------------------------------------------------------

// composeVariables lists every variable docker-compose.yml interpolates,
// using compose-go's own template pattern on the uninterpolated model.
func composeVariables(t *testing.T) map[string]template.Variable {
	t.Helper()
	model, err := loader.LoadModelWithContext(context.Background(), configDetails(t, nil), func(o *loader.Options) {
		o.SetProjectName("stepcast", true)
		o.SkipInterpolation = true
		o.SkipValidation = true
		o.SkipNormalization = true
		o.SkipConsistencyCheck = true
		o.SkipResolveEnvironment = true
	})
	require.NoError(t, err)
	vars := template.ExtractVariables(model, template.DefaultPattern)
	require.NotEmpty(t, vars)
	return vars
}

func TestVariablesAreDocumented(t *testing.T) {
	vars := composeVariables(t)

	var required []string
	for name, v := range vars {
		_, known := knownVariables[name]
		assert.True(t, known, "docker-compose.yml uses ${%s}: add it to knownVariables and deploy/env.example", name)
		if v.Required {
			required = append(required, name)
		}
	}
	assert.ElementsMatch(t, requiredVariables, required, "required (${VAR:?...}) variables")
	for name := range knownVariables {
		_, used := vars[name]
		assert.True(t, used, "knownVariables lists %s but docker-compose.yml does not use it", name)
	}

	example := readRepoFile(t, "deploy/env.example")
	for name := range knownVariables {
		re := regexp.MustCompile(`(?m)^#?\s*` + regexp.QuoteMeta(name) + `=`)
		assert.Regexp(t, re, example, "deploy/env.example must document %s", name)
	}
	// Required ones must be active (uncommented) lines in the example.
	for _, name := range requiredVariables {
		assert.Regexp(t, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+`=`), example,
			"deploy/env.example: required %s must not be commented out", name)
	}
}

// The raw text check catches variables hidden where the model walk might not
// look (and $VAR without braces, which the file should not use).
func TestNoBareVariables(t *testing.T) {
	src := readRepoFile(t, "docker-compose.yml")
	var body []string
	for _, line := range strings.Split(src, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			body = append(body, line)
		}
	}
	text := strings.ReplaceAll(strings.Join(body, "\n"), "$$", "")
	for _, m := range regexp.MustCompile(`\$([A-Za-z_{])`).FindAllStringSubmatchIndex(text, -1) {
		if text[m[2]:m[3]] != "{" {
			t.Errorf("docker-compose.yml: use ${VAR}, not $VAR: %q", text[m[0]:min(len(text), m[0]+30)])
		}
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(text, -1) {
		_, known := knownVariables[m[1]]
		assert.True(t, known, "docker-compose.yml uses undocumented ${%s}", m[1])
	}
}

func TestMissingAdminTokenFails(t *testing.T) {
	env := requiredEnv()
	delete(env, "STEPCAST_ADMIN_TOKEN")
	_, err := loadCompose(t, env)
	require.Error(t, err, "docker-compose.yml must refuse to load without STEPCAST_ADMIN_TOKEN")
	assert.Contains(t, err.Error(), "STEPCAST_ADMIN_TOKEN")
	assert.Contains(t, err.Error(), "admin API", "the error should say what the token is for")

	env["STEPCAST_ADMIN_TOKEN"] = ""
	_, err = loadCompose(t, env)
	require.Error(t, err, "an empty STEPCAST_ADMIN_TOKEN must be rejected too")
	assert.Contains(t, err.Error(), "STEPCAST_ADMIN_TOKEN")
}

func TestEveryRequiredVariableIsEnforced(t *testing.T) {
	for _, name := range requiredVariables {
		t.Run(name, func(t *testing.T) {
			env := requiredEnv()
			delete(env, name)
			_, err := loadCompose(t, env)
			require.Error(t, err)
			assert.Contains(t, err.Error(), name)
		})
	}
	// And nothing else is required: the optional ones all have defaults.
	require.ElementsMatch(t, requiredVariables, slices.Collect(maps.Keys(requiredEnv())))
}

// Sanity check of the helpers above, so a broken parser cannot make the
// real checks pass vacuously.
func TestInitScriptParser(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "x.sh")
	require.NoError(t, os.WriteFile(f, []byte(`: "${A_PW:?}"
psql <<-'EOSQL'
	CREATE ROLE app LOGIN PASSWORD :'pw';
	create database "appdb" owner app;
	CREATE DATABASE other;
EOSQL
`), 0o600))
	got := parseInitScripts(t, f)
	assert.Equal(t, []string{"app"}, got.roles)
	assert.Equal(t, map[string]string{"appdb": "app", "other": ""}, got.databases)
	assert.Equal(t, []string{"A_PW"}, got.envVars)

	df := parseDockerfile(t, fmt.Sprintf("ARG V=1.26.8\nFROM --platform=$BUILDPLATFORM golang:${V}-bookworm AS b\nRUN a \\\n  b\nFROM scratch\nENTRYPOINT [%q]\n", "/x"))
	assert.Equal(t, "golang:1.26.8-bookworm", df.stages[0].image)
	assert.Equal(t, "b", df.stages[0].name)
	assert.Equal(t, "a b", df.stages[0].insts[0].args)
	assert.Equal(t, "/x", df.entrypoint(t))
}
