package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// configTable renders envVars as README.md's table.
func configTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, e := range envVars {
		def := "`" + e.Default + "`"
		if e.Default == "" {
			def = "(empty)"
		}
		b.WriteString("| `" + e.Name + "` | " + def + " | " + e.Help + " |\n")
	}
	return b.String()
}

// README.md documents exactly the settings the program reads. Run with
// STEPCAST_UPDATE_README=1 to rewrite the table.
func TestREADMEListsEveryVariable(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	const begin, end = "<!-- config-table: generated from envVars in cmd/stepcast/config.go; a test keeps them equal -->\n", "<!-- end config-table -->"
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatal("README.md has no config-table markers")
	}
	want := configTable()
	if got := readme[i+len(begin) : j]; got != want {
		if os.Getenv("STEPCAST_UPDATE_README") != "" {
			readme = readme[:i+len(begin)] + want + readme[j:]
			if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("README.md's configuration table is out of date; run STEPCAST_UPDATE_README=1 go test ./cmd/stepcast -run README\ngot:\n%s\nwant:\n%s", got, want)
	}
	// Every variable the code reads is documented: loadConfig panics on
	// an undocumented name, so loading with an empty environment proves it.
	if _, err := loadConfig(func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
}

func TestConfigRefusesBadValues(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"webhook bytes": {"STEPCAST_MAX_WEBHOOK_BYTES": "-1"},
		"log level":     {"STEPCAST_LOG_LEVEL": "loud"},
		"log format":    {"STEPCAST_LOG_FORMAT": "xml"},
		"ui port":       {"STEPCAST_TEMPORAL_UI_PORT": "http"},
		"retention":     {"STEPCAST_INBOX_RETENTION": "7 days"},
		"negative":      {"STEPCAST_INBOX_RETENTION": "-1h"},
	} {
		if _, err := loadConfig(func(k string) string { return env[k] }); err == nil {
			t.Errorf("%s: %v accepted", name, env)
		}
	}
	cfg, err := loadConfig(func(k string) string { return map[string]string{"TEMPORAL_ADDRESS": "t:7233"}[k] })
	if err != nil || cfg.TemporalAddress != "t:7233" || !cfg.temporalFromEnv || cfg.HTTPAddr != ":8080" || cfg.TaskQueue != "stepcast" ||
		cfg.InboxRetention != 7*24*time.Hour {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
}

func TestAPIRequiresAdminToken(t *testing.T) {
	err := run(t.Context(), []string{"api"}, func(string) string { return "" }, nil, os.Stderr)
	if err == nil || !strings.Contains(err.Error(), "STEPCAST_ADMIN_TOKEN") {
		t.Fatalf("api without a token: %v", err)
	}
}
