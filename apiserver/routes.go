package apiserver

import (
	"github.com/gin-gonic/gin"
)

// routes is the whole HTTP surface, at a glance.
func (s *Server) routes(r *gin.Engine) {
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(s.metrics.Handler()))

	// LINE calls this; the channel secret's signature is the auth.
	r.POST("/webhooks/line/:channelID", s.lineWebhook)

	api := r.Group("/api/v1", s.requireAdmin, s.limitBody)
	api.POST("/channels", s.createChannel)
	api.GET("/channels", s.listChannels)
	api.GET("/channels/:channelID", s.getChannel)

	api.POST("/channels/:channelID/scenarios", s.createScenario)
	api.GET("/channels/:channelID/scenarios", s.listScenarios)
	api.GET("/scenarios/:scenarioID", s.getScenario)
	api.PUT("/scenarios/:scenarioID", s.updateScenario)
	api.POST("/scenarios/:scenarioID/publish", s.publishScenario)

	api.GET("/channels/:channelID/friends", s.listFriends)
	api.GET("/channels/:channelID/enrollments", s.listEnrollments)
	api.GET("/channels/:channelID/deliveries", s.listDeliveries)
}
