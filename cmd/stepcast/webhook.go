package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stepcast/stepcast/fakeline"
)

// sendWebhook is the dev helper that plays LINE: it sends a correctly
// signed follow or unfollow webhook to a running Stepcast.
func sendWebhook(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	url := fs.String("url", "http://localhost:8080", "base URL of the Stepcast API")
	channel := fs.Uint("channel", 0, "Stepcast channel ID (from POST /api/v1/channels)")
	secret := fs.String("secret", "", "the channel secret given when the channel was created")
	user := fs.String("user", "", "LINE user ID, U followed by 32 hex digits (random when empty)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: stepcast webhook follow|unfollow -channel ID -secret SECRET [-user U...] [-url URL]")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return errors.New("say follow or unfollow")
	}
	kind := args[0]
	if kind != "follow" && kind != "unfollow" {
		fs.Usage()
		return fmt.Errorf("unknown event %q: say follow or unfollow", kind)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *channel == 0 || *secret == "" {
		fs.Usage()
		return errors.New("-channel and -secret are required")
	}
	if *user == "" {
		*user = "U" + randomHex(16)
	}
	body := fakeline.WebhookBody(kind, *user, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/webhooks/line/%d", *url, *channel), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Line-Signature", fakeline.Sign(*secret, body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("Stepcast answered %d: %s", res.StatusCode, answer)
	}
	fmt.Fprintf(stdout, "sent %s for user %s\n", kind, *user)
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
