package apiserver

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// OpenAPIDocument describes the admin API.
//
//go:embed openapi.yaml
var OpenAPIDocument []byte

func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", OpenAPIDocument)
}
