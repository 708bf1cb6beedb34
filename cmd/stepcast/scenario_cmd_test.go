package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepcast/stepcast/internal/testenv"
)

const fileScenario = `# A scenario kept in a repository.
name: From a file
start: {type: follow}
nodes:
  - id: wait
    type: wait
    wait: {after: 1s}
    next: hello
  - id: hello
    type: message
    message:
      messages:
        - {type: text, text: "Hello from a file"}
`

func TestScenarioValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(fileScenario), 0o644)
	os.WriteFile(bad, []byte(strings.Replace(fileScenario, `{type: text, text: "Hello from a file"}`, `{type: text}`, 1)), 0o644)

	var out bytes.Buffer
	if err := run(t.Context(), []string{"scenario", "validate", good}, os.Getenv, &out, &out); err != nil {
		t.Fatalf("valid file refused: %v\n%s", err, out.String())
	}
	out.Reset()
	err := run(t.Context(), []string{"scenario", "validate", good, bad}, os.Getenv, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 files") {
		t.Fatalf("invalid file accepted: %v", err)
	}
	if !strings.Contains(out.String(), "nodes[1].message.messages[0].text") {
		t.Fatalf("output does not locate the problem:\n%s", out.String())
	}
}

func TestScenarioApplyCommand(t *testing.T) {
	s := startSystem(t)
	ch := s.createChannel()
	file := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(file, []byte(fileScenario), 0o644)
	env := func(k string) string { return map[string]string{"STEPCAST_ADMIN_TOKEN": testAdminToken}[k] }
	args := []string{"scenario", "apply", "-url", s.url, "-channel", fmt.Sprint(ch), "-key", "from-file", "-publish", file}
	var out bytes.Buffer
	if err := run(t.Context(), args, env, &out, &out); err != nil {
		t.Fatalf("apply: %v\n%s", err, out.String())
	}
	// Applying again updates the same scenario and publishes version 2.
	os.WriteFile(file, []byte(strings.Replace(fileScenario, "Hello from a file", "Hello again", 1)), 0o644)
	out.Reset()
	if err := run(t.Context(), args, env, &out, &out); err != nil || !strings.Contains(out.String(), "published version 2") {
		t.Fatalf("second apply: %v\n%s", err, out.String())
	}
	var list struct{ Items []struct{ Key string } }
	s.mustDo("GET", fmt.Sprintf("/api/v1/channels/%d/scenarios", ch), nil, &list)
	if len(list.Items) != 1 {
		t.Fatalf("%d scenarios after two applies, want 1", len(list.Items))
	}
	user := testenv.UserID()
	s.event(ch, "follow", user)
	waitFor(t, 20*time.Second, "the push", func() bool { return len(s.line.PushesTo(user)) == 1 })
	if got := pushTexts(s.line.PushesTo(user)); got[0] != "text:Hello again" {
		t.Fatalf("sent %q, want the second version", got)
	}
}
