// Package benchkit holds what the benchmark commands share: a scratch
// database, the CPU time of processes, and the scenarios they enroll
// friends in.
package benchkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/scenario"
	"github.com/stepcast/stepcast/workflows"
)

// Database is a migrated database made for one run on a PostgreSQL
// server; Drop removes it.
type Database struct {
	Admin *models.Store // the server's maintenance database
	Name  string
	URL   string
}

// CreateDatabase creates and migrates a fresh database, named prefix and a
// random suffix, on the server that adminURL points to.
func CreateDatabase(ctx context.Context, adminURL, prefix string, log *slog.Logger) (*Database, error) {
	admin, err := models.Open(adminURL, "", log)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = admin.Ping(pctx)
		cancel()
	}
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL is required at %s (-postgres-url): %v", adminURL, err)
	}
	name := prefix + RandomHex(6)
	if err := admin.DB.WithContext(ctx).Exec("CREATE DATABASE " + name).Error; err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		_ = admin.Close()
		return nil, err
	}
	u.Path = "/" + name
	d := &Database{Admin: admin, Name: name, URL: u.String()}
	store, err := models.Open(d.URL, "", log)
	if err != nil {
		d.Drop()
		return nil, err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		d.Drop()
		return nil, err
	}
	return d, nil
}

// Drop removes the database, closing its connections.
func (d *Database) Drop() {
	if d == nil {
		return
	}
	_ = d.Admin.DB.Exec("DROP DATABASE IF EXISTS " + d.Name + " WITH (FORCE)").Error
	_ = d.Admin.Close()
}

// RandomHex is n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ProcessCPU is the CPU time, user and system, that a process has used so
// far, in seconds, and the start of its command name (the kernel keeps 15
// characters). ok is false for a process that is gone.
func ProcessCPU(pid int) (seconds float64, name string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	// The command is in parentheses; utime and stime are the 14th and
	// 15th fields of the whole line.
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return 0, "", false
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 13 {
		return 0, "", false
	}
	user, _ := strconv.ParseFloat(f[11], 64)
	sys, _ := strconv.ParseFloat(f[12], 64)
	return (user + sys) / 100, s[i+1 : j], true // USER_HZ is 100 on Linux
}

// CPUByName is the CPU time, in seconds, used so far by the processes
// whose command name starts with prefix.
func CPUByName(prefix string) float64 {
	if len(prefix) > 15 {
		prefix = prefix[:15]
	}
	ents, _ := os.ReadDir("/proc")
	var total float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if secs, name, ok := ProcessCPU(pid); ok && strings.HasPrefix(name, prefix) {
			total += secs
		}
	}
	return total
}

// StepsDoc is a scenario document of message steps, each after the given
// wait: wait-1, step-1, wait-2, step-2 and so on.
func StepsDoc(name string, waits []map[string]any) map[string]any {
	var nodes []any
	for i, w := range waits {
		wait := map[string]any{"id": fmt.Sprintf("wait-%d", i+1), "type": "wait", "wait": w, "next": fmt.Sprintf("step-%d", i+1)}
		msg := map[string]any{"id": fmt.Sprintf("step-%d", i+1), "type": "message",
			"message": map[string]any{"messages": []any{map[string]any{"type": "text", "text": fmt.Sprintf("%s: step %d", name, i+1)}}}}
		if i+1 < len(waits) {
			msg["next"] = fmt.Sprintf("wait-%d", i+2)
		}
		nodes = append(nodes, wait, msg)
	}
	return map[string]any{"name": name, "timezone": "UTC", "start": map[string]any{"type": "follow"}, "nodes": nodes}
}

// WelcomeSeries is a realistic five-step welcome series: days 1, 3, 5, 7
// and 14 at 10:00. Its enrollments sleep through a benchmark.
func WelcomeSeries() map[string]any {
	var waits []map[string]any
	for _, d := range []int{1, 3, 5, 7, 14} {
		waits = append(waits, map[string]any{"days": d, "at": "10:00"})
	}
	return StepsDoc("Welcome series", waits)
}

// WelcomeDocument is WelcomeSeries parsed, as an enrollment's input holds
// it.
func WelcomeDocument() (*scenario.Document, error) {
	b, err := json.Marshal(WelcomeSeries())
	if err != nil {
		return nil, err
	}
	return scenario.Parse(b)
}

// StartEnrollment starts an Enrollment workflow of doc for a made-up friend
// directly, with the ID policies, search attributes and input that the
// dispatcher gives a follow; opts names the workflow and its queue.
func StartEnrollment(ctx context.Context, c client.Client, opts client.StartWorkflowOptions, channelID uint, key, user string, friendID uint, doc *scenario.Document) error {
	opts.WorkflowIDConflictPolicy = enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	opts.WorkflowIDReusePolicy = enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	opts.TypedSearchAttributes = workflows.StartSearchAttributes(channelID, key, user, doc)
	_, err := c.ExecuteWorkflow(ctx, opts, workflows.EnrollmentWorkflow, workflows.EnrollmentInput{
		ChannelID: channelID, ScenarioID: 1, ScenarioKey: key, Version: 1, FriendID: friendID, UserID: user,
		Document: *doc, EnrolledAt: time.Now(), Revision: workflows.Revision,
	})
	return err
}
