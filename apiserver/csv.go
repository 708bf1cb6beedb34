package apiserver

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/models"
)

// maxCSVBytes bounds an attributes upload. The file is streamed, so the
// limit is not about memory: a million rows of a user ID and a few
// attributes are 60 to 120 MB.
const maxCSVBytes = 128 << 20

// csvUploadTime is how long an upload may take to send and apply, past the
// HTTP server's read and write timeouts (which suit JSON bodies).
const csvUploadTime = 30 * time.Minute

// bodyLimits are the routes whose bodies may be bigger than
// Config.MaxBodyBytes: limitBody applies these limits to them instead.
var bodyLimits = map[string]int64{
	"/api/v1/channels/:channelID/friends/attributes.csv": maxCSVBytes,
}

// AttributesUpload is the answer to an attributes upload.
type AttributesUpload struct {
	Mode    string `json:"mode"`
	Applied int    `json:"applied"`
	// Rejected lists the first 1000 bad rows; RejectedCount counts them all.
	Rejected      []RejectedRow `json:"rejected"`
	RejectedCount int           `json:"rejectedCount"`
}

// RejectedRow is a bad row of an upload, by its file line (the header is
// line 1).
type RejectedRow struct {
	Line    int    `json:"line"`
	UserID  string `json:"userId,omitempty"`
	Message string `json:"message"`
}

// uploadAttributesCSV sets friends' attributes from a CSV body; see
// models.ImportAttributesCSV and openapi.yaml for the format and modes.
func (s *Server) uploadAttributesCSV(c *gin.Context) {
	mode := c.DefaultQuery("mode", models.ImportPartial)
	if mode != models.ImportPartial && mode != models.ImportAll {
		s.fail(c, stepcast.Errorf(stepcast.EINVALID, "mode %q is not %q (the default) or %q", mode, models.ImportPartial, models.ImportAll))
		return
	}
	ch, err := s.channel(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, _ := mime.ParseMediaType(ct)
		if strings.HasPrefix(mt, "multipart/") || mt == "application/json" {
			s.fail(c, stepcast.Errorf(stepcast.EINVALID,
				"the body is %s; send the CSV file itself as the body with Content-Type: text/csv (curl --data-binary @file.csv)", mt))
			return
		}
	}
	if c.Request.ContentLength > maxCSVBytes {
		s.fail(c, stepcast.Errorf(stepcast.ETOOLARGE, "request body is over %d bytes; split the file", int64(maxCSVBytes)))
		return
	}
	// Errors only say the writer cannot (httptest): the server's timeouts
	// then stay as they are.
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Now().Add(csvUploadTime))
	_ = rc.SetWriteDeadline(time.Now().Add(csvUploadTime))

	start := time.Now()
	res, err := s.store.ImportAttributesCSV(c.Request.Context(), ch.ID, c.Request.Body, mode)
	s.log.Info("attributes upload", "channel", ch.ID, "mode", mode, "applied", res.Applied,
		"rejected", res.RejectedCount, "duration", time.Since(start), "error", err)
	if err != nil {
		s.fail(c, uploadError(err, mode, res))
		return
	}
	out := AttributesUpload{Mode: mode, Applied: res.Applied, Rejected: make([]RejectedRow, len(res.Rejected)), RejectedCount: res.RejectedCount}
	for i, r := range res.Rejected {
		out.Rejected[i] = RejectedRow{Line: r.Line, UserID: r.UserID, Message: r.Message}
	}
	c.JSON(http.StatusOK, out)
}

// uploadError says what a broken-off upload left behind.
func uploadError(err error, mode string, res *models.AttributeImport) error {
	var re *models.UploadReadError
	if !errors.As(err, &re) {
		return err
	}
	left := "nothing was applied"
	if mode == models.ImportPartial && res.Applied > 0 {
		left = fmt.Sprintf("%d rows of the batches before it were applied", res.Applied)
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return stepcast.Errorf(stepcast.ETOOLARGE, "request body is over %d bytes (stopped after line %d); %s", tooBig.Limit, re.Line, left)
	}
	return stepcast.Errorf(stepcast.EINVALID, "the body could not be read after line %d: %v; %s", re.Line, re.Err, left)
}
