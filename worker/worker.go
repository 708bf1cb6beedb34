// Package worker runs the Temporal worker that executes enrollment
// workflows and their activities, and holds the Temporal client set-up that
// the API shares.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/stepcast/stepcast/activities"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/workflows"
)

// Dial connects to Temporal, reporting the SDK's metrics into m's registry.
func Dial(ctx context.Context, address, namespace string, m *metrics.Metrics, logger *slog.Logger) (client.Client, error) {
	opts := client.Options{
		HostPort:  address,
		Namespace: namespace,
		Logger:    log.NewStructuredLogger(logger),
	}
	if m != nil {
		// NewReporter, not Configuration.NewReporter: the latter also mounts
		// /metrics on http.DefaultServeMux, once per process.
		reporter := tallyprom.NewReporter(tallyprom.Options{
			Registerer:       m.Registry,
			DefaultTimerType: tallyprom.HistogramTimerType,
			OnRegisterError:  func(err error) { logger.Warn("temporal metrics", "error", err) },
		})
		scope, _ := tally.NewRootScope(tally.ScopeOptions{
			CachedReporter:  reporter,
			Separator:       tallyprom.DefaultSeparator,
			SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
		}, time.Second)
		opts.MetricsHandler = sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("worker: connect to Temporal at %s: %w", address, err)
	}
	return c, nil
}

// RegisterSearchAttributes adds Stepcast's custom search attributes to the
// namespace; attributes that already exist are left as they are.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	attrs := map[string]enums.IndexedValueType{}
	for _, k := range workflows.SearchAttributes {
		attrs[k.GetName()] = enums.INDEXED_VALUE_TYPE_KEYWORD
	}
	_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: attrs,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("worker: register search attributes: %w", err)
	}
	return nil
}

// Options are the worker settings Stepcast runs with. Enrollments sleep for
// days and then many wake at the same minute (a campaign's "day 1 at
// 10:00"); the settings are for that burst:
//   - more workflow-task pollers than the SDK's 2, so that a woken
//     enrollment's task finds a poller waiting and is handed over in
//     memory instead of being written to the task queue's table first;
//   - a sticky schedule-to-start timeout of minutes, not the SDK's 5
//     seconds: in a burst a woken enrollment's task waits in the server's
//     queues longer than that before it reaches the worker that has the
//     enrollment cached, and a timed-out sticky task costs a second task
//     on the normal queue, with a replay of the whole history, just when
//     the server is busiest. With 5,000 friends due at once on Temporal
//     on PostgreSQL, 30 seconds gave 49.8 sends/s and 5 minutes 83.2
//     (BENCHMARKS.md). The price: tasks already queued for a worker that
//     crashes wait up to that long; once the server sees no poller on the
//     sticky queue, new tasks go to the normal queue at once.
//
// Activities are few (the bulk audience enrollment): steps run as local
// activities inside workflow tasks.
func Options() worker.Options {
	return worker.Options{
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 2,
		StickyScheduleToStartTimeout:     5 * time.Minute,
	}
}

// New returns a worker for the task queue with the enrollment workflow and
// the activities registered.
func New(c client.Client, taskQueue string, acts *activities.Activities, opts worker.Options) worker.Worker {
	w := worker.New(c, taskQueue, opts)
	w.RegisterWorkflowWithOptions(workflows.Enrollment, workflow.RegisterOptions{Name: workflows.EnrollmentWorkflow})
	w.RegisterWorkflowWithOptions(workflows.AudienceEnrollment, workflow.RegisterOptions{Name: workflows.AudienceEnrollmentWorkflow})
	w.RegisterActivity(acts)
	return w
}
