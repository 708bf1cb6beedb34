package main

import (
	"os"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast/internal/testenv"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(testenv.Main(m))
}
