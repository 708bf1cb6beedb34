package main

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// config is every setting, read from the environment. README.md lists them
// with their defaults; keep the two in step (config_test.go checks).
type config struct {
	HTTPAddr          string        // STEPCAST_HTTP_ADDR
	WorkerHTTPAddr    string        // STEPCAST_WORKER_HTTP_ADDR
	DatabaseURL       string        // DATABASE_URL
	SQLitePath        string        // STEPCAST_SQLITE_PATH
	TemporalAddress   string        // TEMPORAL_ADDRESS
	TemporalNamespace string        // TEMPORAL_NAMESPACE
	TaskQueue         string        // STEPCAST_TASK_QUEUE
	AdminToken        string        // STEPCAST_ADMIN_TOKEN
	LineAPIBaseURL    string        // LINE_API_BASE_URL
	PublicURL         string        // STEPCAST_PUBLIC_URL
	LinkSecret        string        // STEPCAST_LINK_SECRET
	LogLevel          string        // STEPCAST_LOG_LEVEL
	LogFormat         string        // STEPCAST_LOG_FORMAT
	MaxWebhookBytes   int64         // STEPCAST_MAX_WEBHOOK_BYTES
	InboxRetention    time.Duration // STEPCAST_INBOX_RETENTION
	// Dev mode only.
	TemporalBin     string // STEPCAST_TEMPORAL_BIN
	TemporalUIPort  int    // STEPCAST_TEMPORAL_UI_PORT
	DevDataDir      string // STEPCAST_DEV_DATA_DIR
	FakeLineAddr    string // STEPCAST_FAKE_LINE_ADDR
	temporalFromEnv bool
	lineFromEnv     bool
}

// envVar is one documented setting.
type envVar struct {
	Name, Default, Help string
}

// envVars is the documented list; README.md's table is made from it.
var envVars = []envVar{
	{"STEPCAST_HTTP_ADDR", ":8080", "Address of the API server: admin API, LINE webhooks, /healthz, /readyz, /metrics."},
	{"STEPCAST_WORKER_HTTP_ADDR", ":8081", "Address of the worker's /healthz, /readyz and /metrics (worker subcommand)."},
	{"DATABASE_URL", "", "PostgreSQL DSN, e.g. postgres://user:pass@host:5432/stepcast?sslmode=disable. Empty: the embedded SQLite database."},
	{"STEPCAST_SQLITE_PATH", "data/stepcast.db", "File of the embedded database when DATABASE_URL is empty."},
	{"TEMPORAL_ADDRESS", "127.0.0.1:7233", "Temporal frontend. In dev mode, setting it uses that server instead of starting a dev server."},
	{"TEMPORAL_NAMESPACE", "default", "Temporal namespace."},
	{"STEPCAST_TASK_QUEUE", "stepcast", "Temporal task queue of the enrollment workflows."},
	{"STEPCAST_ADMIN_TOKEN", "", "Bearer token of the admin API. Required by api; dev mode uses dev-admin-token when empty."},
	{"LINE_API_BASE_URL", "https://api.line.me", "LINE Messaging API base URL. In dev mode, when unset, the built-in fake LINE server is used."},
	{"STEPCAST_PUBLIC_URL", "http://localhost:8080", "Externally reachable base URL of the API server: tracked links in messages point to it."},
	{"STEPCAST_LINK_SECRET", "", "Key that signs tracked-link tokens; required by api and worker (the same value on both), at least 32 characters. Dev mode uses a fixed development key when empty."},
	{"STEPCAST_LOG_LEVEL", "info", "debug, info, warn or error."},
	{"STEPCAST_LOG_FORMAT", "json", "json or text (dev mode defaults to text)."},
	{"STEPCAST_MAX_WEBHOOK_BYTES", "1048576", "Largest LINE webhook body accepted; larger ones get 413."},
	{"STEPCAST_INBOX_RETENTION", "168h", "How long processed LINE webhook events are kept in the inbox (their webhookEventId drops LINE's redeliveries; the payloads help look into problems); 0 keeps them forever."},
	{"STEPCAST_TEMPORAL_BIN", "bin/temporal", "Dev mode: the Temporal CLI that runs the dev server (make tools builds it)."},
	{"STEPCAST_TEMPORAL_UI_PORT", "8233", "Dev mode: port of the Temporal Web UI."},
	{"STEPCAST_DEV_DATA_DIR", "data", "Dev mode: folder of the dev server's and the embedded database's files."},
	{"STEPCAST_FAKE_LINE_ADDR", "127.0.0.1:8090", "Dev mode: address of the fake LINE server."},
}

func loadConfig(getenv func(string) string) (config, error) {
	get := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		for _, e := range envVars {
			if e.Name == name {
				return e.Default
			}
		}
		panic("undocumented setting " + name)
	}
	c := config{
		HTTPAddr:          get("STEPCAST_HTTP_ADDR"),
		WorkerHTTPAddr:    get("STEPCAST_WORKER_HTTP_ADDR"),
		DatabaseURL:       get("DATABASE_URL"),
		SQLitePath:        get("STEPCAST_SQLITE_PATH"),
		TemporalAddress:   get("TEMPORAL_ADDRESS"),
		TemporalNamespace: get("TEMPORAL_NAMESPACE"),
		TaskQueue:         get("STEPCAST_TASK_QUEUE"),
		AdminToken:        get("STEPCAST_ADMIN_TOKEN"),
		LineAPIBaseURL:    get("LINE_API_BASE_URL"),
		PublicURL:         strings.TrimRight(get("STEPCAST_PUBLIC_URL"), "/"),
		LinkSecret:        get("STEPCAST_LINK_SECRET"),
		LogLevel:          get("STEPCAST_LOG_LEVEL"),
		LogFormat:         get("STEPCAST_LOG_FORMAT"),
		TemporalBin:       get("STEPCAST_TEMPORAL_BIN"),
		DevDataDir:        get("STEPCAST_DEV_DATA_DIR"),
		FakeLineAddr:      get("STEPCAST_FAKE_LINE_ADDR"),
		temporalFromEnv:   getenv("TEMPORAL_ADDRESS") != "",
		lineFromEnv:       getenv("LINE_API_BASE_URL") != "",
	}
	var err error
	if c.MaxWebhookBytes, err = strconv.ParseInt(get("STEPCAST_MAX_WEBHOOK_BYTES"), 10, 64); err != nil || c.MaxWebhookBytes <= 0 {
		return c, fmt.Errorf("STEPCAST_MAX_WEBHOOK_BYTES must be a positive number of bytes, not %q", get("STEPCAST_MAX_WEBHOOK_BYTES"))
	}
	if c.InboxRetention, err = time.ParseDuration(get("STEPCAST_INBOX_RETENTION")); err != nil || c.InboxRetention < 0 {
		return c, fmt.Errorf("STEPCAST_INBOX_RETENTION must be a duration such as 168h, or 0, not %q", get("STEPCAST_INBOX_RETENTION"))
	}
	if c.TemporalUIPort, err = strconv.Atoi(get("STEPCAST_TEMPORAL_UI_PORT")); err != nil {
		return c, fmt.Errorf("STEPCAST_TEMPORAL_UI_PORT must be a port number, not %q", get("STEPCAST_TEMPORAL_UI_PORT"))
	}
	if _, err := c.logLevel(); err != nil {
		return c, err
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return c, fmt.Errorf("STEPCAST_LOG_FORMAT must be json or text, not %q", c.LogFormat)
	}
	return c, nil
}

func (c config) logLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(c.LogLevel))); err != nil {
		return l, fmt.Errorf("STEPCAST_LOG_LEVEL must be debug, info, warn or error, not %q", c.LogLevel)
	}
	return l, nil
}

func (c config) logger(w io.Writer) *slog.Logger {
	level, _ := c.logLevel()
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
