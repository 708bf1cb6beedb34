package apiserver

import (
	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast/models"
	"github.com/stepcast/stepcast/workflows"
)

// routes is the whole HTTP surface, at a glance. openapi.yaml documents the
// admin API; a test fails when the two differ.
func (s *Server) routes(r *gin.Engine) {
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(s.metrics.Handler()))
	r.GET("/openapi.yaml", s.openAPI)

	// LINE calls this; the channel secret's signature is the auth.
	r.POST("/webhooks/line/:channelID", s.lineWebhook)
	// Tracked links in messages; the signed token is the auth.
	r.GET("/r/:token", s.redirect)
	// Tracked friend-add links, one per add route: public by design.
	r.GET("/add/:channelID/:route", s.addFriend)
	// The shop's site or server; the channel's events key is the auth.
	web := r.Group("/events", cors, s.limitBody)
	web.POST("/:channelID", s.webEvent)
	web.OPTIONS("/:channelID")

	api := r.Group("/api/v1", s.requireAdmin, s.limitBody)
	api.POST("/channels", s.createChannel)
	api.GET("/channels", s.listChannels)
	api.GET("/channels/:channelID", s.getChannel)
	api.PATCH("/channels/:channelID", s.updateChannel)
	api.POST("/channels/:channelID/events-key", s.rotateEventsKey)
	api.GET("/channels/:channelID/route-visits", s.routeVisits)
	api.POST("/channels/:channelID/keyword-rules", s.createKeywordRule)
	api.GET("/channels/:channelID/keyword-rules", s.listKeywordRules)
	api.DELETE("/channels/:channelID/keyword-rules/:ruleID", s.deleteKeywordRule)

	api.POST("/channels/:channelID/scenarios", s.createScenario)
	api.GET("/channels/:channelID/scenarios", s.listScenarios)
	api.POST("/channels/:channelID/scenarios/validate", s.validateScenario)
	api.GET("/scenarios/:scenarioID", s.getScenario)
	api.PUT("/scenarios/:scenarioID", s.updateScenario)
	api.POST("/scenarios/:scenarioID/publish", s.publishScenario)
	api.POST("/scenarios/:scenarioID/pause", s.setStatus(models.ScenarioPaused, workflows.ControlPause))
	api.POST("/scenarios/:scenarioID/resume", s.setStatus(models.ScenarioActive, workflows.ControlResume))
	api.POST("/scenarios/:scenarioID/end", s.setStatus(models.ScenarioEnded, workflows.ControlEnd))
	api.GET("/scenarios/:scenarioID/versions", s.listVersions)
	api.GET("/scenarios/:scenarioID/versions/:version", s.getVersion)
	api.POST("/scenarios/:scenarioID/preview", s.previewScenario)
	api.POST("/scenarios/:scenarioID/test-send", s.testSend)
	api.GET("/scenarios/:scenarioID/audience-enrollment", s.audienceEnrollment)
	api.GET("/scenarios/:scenarioID/stats", s.scenarioStats)

	api.GET("/channels/:channelID/friends", s.listFriends)
	api.GET("/channels/:channelID/friends/:userID", s.getFriend)
	api.POST("/channels/:channelID/friends/attributes.csv", s.uploadAttributesCSV)
	api.PATCH("/channels/:channelID/friends/:userID/attributes", s.setAttributes)
	api.POST("/channels/:channelID/friends/:userID/tags", s.setTags)
	api.PUT("/channels/:channelID/friends/:userID/route", s.setRoute)
	api.POST("/channels/:channelID/friends/:userID/enrollments", s.enrollFriend)

	api.POST("/channels/:channelID/tags", s.defineTags)
	api.GET("/channels/:channelID/tags", s.listTags)
	api.POST("/channels/:channelID/events", s.recordEvent)
	api.POST("/channels/:channelID/audiences", s.createAudience)
	api.GET("/channels/:channelID/audiences", s.listAudiences)

	api.GET("/channels/:channelID/enrollments", s.listEnrollments)
	api.GET("/channels/:channelID/enrollments/:enrollmentID", s.getEnrollment)
	api.GET("/channels/:channelID/deliveries", s.listDeliveries)
}
