package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/stepcast/stepcast"
	"github.com/stepcast/stepcast/scenario"
)

const scenarioUsage = `usage:
  stepcast scenario validate FILE...
      check scenario files (YAML or JSON) offline: structure, graph, times,
      and every message against LINE's OpenAPI document
  stepcast scenario apply -channel ID -key KEY [-publish] [-url URL] FILE
      create or update the channel's scenario KEY from FILE through the admin
      API (token from STEPCAST_ADMIN_TOKEN), and publish it with -publish; the
      server also checks the channel's audiences and tags`

// scenarioCmd keeps scenarios in files, in a repository, and applies them.
func scenarioCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(scenarioUsage)
	}
	switch args[0] {
	case "validate":
		if len(args) < 2 {
			return errors.New(scenarioUsage)
		}
		failed := 0
		for _, file := range args[1:] {
			if _, err := loadScenarioFile(file); err != nil {
				failed++
				fmt.Fprintln(stdout, describe(file, err))
				continue
			}
			fmt.Fprintf(stdout, "%s: ok\n", file)
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d files are not valid", failed, len(args)-1)
		}
		return nil
	case "apply":
		return applyScenario(ctx, args[1:], getenv, stdout)
	}
	return fmt.Errorf("unknown scenario command %q\n%s", args[0], scenarioUsage)
}

func loadScenarioFile(file string) (*scenario.Document, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	doc, err := scenario.Parse(data)
	if err != nil {
		return nil, err
	}
	return doc, doc.Validate()
}

// describe prints an error with every problem on its own line.
func describe(prefix string, err error) string {
	var e *stepcast.Error
	if !errors.As(err, &e) || len(e.Problems) == 0 {
		return fmt.Sprintf("%s: %v", prefix, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", prefix, e.Message)
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Path, p.Message)
	}
	return b.String()
}

func applyScenario(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("scenario apply", flag.ContinueOnError)
	base := fs.String("url", "http://localhost:8080", "base URL of the Stepcast API")
	channel := fs.Uint("channel", 0, "channel ID")
	key := fs.String("key", "", "scenario key (lower-case letters, digits, dashes)")
	publish := fs.Bool("publish", false, "publish the scenario after saving it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *channel == 0 || *key == "" || fs.NArg() != 1 {
		return errors.New(scenarioUsage)
	}
	token := getenv("STEPCAST_ADMIN_TOKEN")
	if token == "" {
		return errors.New("STEPCAST_ADMIN_TOKEN must be set to the admin API's token")
	}
	file := fs.Arg(0)
	doc, err := loadScenarioFile(file)
	if err != nil {
		return errors.New(describe(file, err))
	}
	api := &adminClient{base: *base, token: token}
	var list struct {
		Items []struct{ ID uint } `json:"items"`
	}
	if err := api.do(ctx, "GET", fmt.Sprintf("/api/v1/channels/%d/scenarios?key=%s", *channel, url.QueryEscape(*key)), nil, &list); err != nil {
		return err
	}
	var sc struct {
		ID      uint `json:"id"`
		Version int  `json:"version"`
	}
	if len(list.Items) == 0 {
		err = api.do(ctx, "POST", fmt.Sprintf("/api/v1/channels/%d/scenarios", *channel), map[string]any{"key": *key, "document": doc}, &sc)
	} else {
		err = api.do(ctx, "PUT", fmt.Sprintf("/api/v1/scenarios/%d", list.Items[0].ID), map[string]any{"document": doc}, &sc)
	}
	if err != nil {
		return errors.New(describe(file, err))
	}
	fmt.Fprintf(stdout, "saved scenario %d (%s) as its draft\n", sc.ID, *key)
	if *publish {
		var v struct {
			Version int `json:"version"`
		}
		if err := api.do(ctx, "POST", fmt.Sprintf("/api/v1/scenarios/%d/publish", sc.ID), nil, &v); err != nil {
			return errors.New(describe(file, err))
		}
		fmt.Fprintf(stdout, "published version %d\n", v.Version)
	}
	return nil
}

type adminClient struct {
	base, token string
}

// do calls the admin API; an error answer becomes a *stepcast.Error with
// the server's problems.
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code     string             `json:"code"`
				Message  string             `json:"message"`
				Problems []stepcast.Problem `json:"problems"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error.Message == "" {
			return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, data)
		}
		return &stepcast.Error{Code: e.Error.Code, Message: e.Error.Message, Problems: e.Error.Problems}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
