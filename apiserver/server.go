// Package apiserver translates HTTP: the admin API, LINE's webhook, health
// and metrics. Handlers decode, validate, call the store or the enroll
// service, and encode; nothing else happens here.
package apiserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/enroll"
	"github.com/stepcast/stepcast/links"
	"github.com/stepcast/stepcast/metrics"
	"github.com/stepcast/stepcast/models"
)

// Config is what the server needs besides its dependencies.
type Config struct {
	// AdminToken is the bearer token of the admin API.
	AdminToken string
	// MaxWebhookBytes bounds a webhook body.
	MaxWebhookBytes int64
	// MaxBodyBytes bounds an admin API body.
	MaxBodyBytes int64
}

// Deps are the server's dependencies.
type Deps struct {
	Store    *models.Store
	Temporal client.Client
	Enroll   *enroll.Service
	// Notify is called after webhook events were stored, to wake the
	// inbox dispatcher.
	Notify func()
	Sender TestSender
	// Links reads tracked-link tokens.
	Links   *links.Signer
	Metrics *metrics.Metrics
	Log     *slog.Logger
}

// TestSender pushes messages outside any enrollment.
type TestSender interface {
	TestSend(ctx context.Context, ch *models.Channel, f *models.Friend, msgs []json.RawMessage) (requestID string, err error)
}

// Server is the HTTP surface of Stepcast.
type Server struct {
	cfg      Config
	store    *models.Store
	temporal client.Client
	enroll   *enroll.Service
	notify   func()
	sender   TestSender
	links    *links.Signer
	metrics  *metrics.Metrics
	log      *slog.Logger
	// webhookSecrets are the channel secrets that LINE's webhooks are
	// checked against.
	webhookSecrets secretCache
}

// New returns a server.
func New(cfg Config, d Deps) *Server {
	if cfg.MaxWebhookBytes <= 0 {
		cfg.MaxWebhookBytes = 1 << 20
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if d.Notify == nil {
		d.Notify = func() {}
	}
	return &Server{cfg: cfg, store: d.Store, temporal: d.Temporal, enroll: d.Enroll, notify: d.Notify,
		sender: d.Sender, links: d.Links, metrics: d.Metrics, log: d.Log}
}

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), s.accessLog)
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) {
		s.fail(c, stepcast.Errorf(stepcast.ENOTFOUND, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, ErrorBody{Error: ErrorDetail{Code: stepcast.EINVALID,
			Message: "method " + c.Request.Method + " is not allowed on " + c.Request.URL.Path}})
	})
	s.routes(r)
	return r
}

// accessLog logs each request once, without bodies or headers, so no secret
// reaches the log.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	if c.FullPath() == "/healthz" || c.FullPath() == "/metrics" {
		return
	}
	s.log.Debug("http", "method", c.Request.Method, "route", c.FullPath(), "status", c.Writer.Status(), "duration", time.Since(start))
}

// requireAdmin checks the admin bearer token in constant time.
func (s *Server) requireAdmin(c *gin.Context) {
	h := c.GetHeader("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		s.fail(c, stepcast.Errorf(stepcast.EUNAUTHORIZED, "missing bearer token: send Authorization: Bearer <admin token>"))
		return
	}
	if s.cfg.AdminToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
		s.fail(c, stepcast.Errorf(stepcast.EUNAUTHORIZED, "the bearer token is not valid"))
		return
	}
	c.Next()
}

// limitBody bounds request bodies of the admin API: MaxBodyBytes, or the
// route's own limit in bodyLimits (uploads).
func (s *Server) limitBody(c *gin.Context) {
	limit, ok := bodyLimits[c.FullPath()]
	if !ok {
		limit = s.cfg.MaxBodyBytes
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	c.Next()
}

func (s *Server) healthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// readyz answers 200 when the database and Temporal answer.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks := gin.H{"database": "ok", "temporal": "ok"}
	ready := true
	if err := s.store.Ping(ctx); err != nil {
		checks["database"], ready = err.Error(), false
	}
	if _, err := s.temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"], ready = err.Error(), false
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, checks)
}

// OpsHandler serves only health and metrics, for the worker process.
func (s *Server) OpsHandler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(s.metrics.Handler()))
	return r
}
