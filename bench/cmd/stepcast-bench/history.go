package main

// What a workflow's history says about its cost: events, workflow tasks,
// activities, local activities and timers.

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

type historyStats struct {
	WorkflowID string
	Events     int
	ByType     map[string]int
}

func (h *historyStats) n(t enums.EventType) int { return h.ByType[t.String()] }

func (h *historyStats) workflowTasks() int {
	return h.n(enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
}

func (h *historyStats) activities() int { return h.n(enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) }

func (h *historyStats) localActivities() int { return h.n(enums.EVENT_TYPE_MARKER_RECORDED) }

func (h *historyStats) timers() int { return h.n(enums.EVENT_TYPE_TIMER_STARTED) }

// types lists the event types with their counts, most first.
func (h *historyStats) types() string {
	type kv struct {
		k string
		v int
	}
	var l []kv
	for k, v := range h.ByType {
		l = append(l, kv{strings.TrimPrefix(k, "EventType"), v})
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].v != l[j].v {
			return l[i].v > l[j].v
		}
		return l[i].k < l[j].k
	})
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = fmt.Sprintf("%s %d", e.k, e.v)
	}
	return strings.Join(parts, ", ")
}

func readHistory(ctx context.Context, c client.Client, workflowID, runID string) (*historyStats, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historyStats{WorkflowID: workflowID, ByType: map[string]int{}}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		h.Events++
		h.ByType[ev.GetEventType().String()]++
	}
	return h, nil
}
