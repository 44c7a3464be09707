package dockersrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// engine is a minimal Docker Engine API client: the three calls the source
// needs, over plain net/http, so runed does not carry the Docker SDK.
// Paths are unversioned on purpose: the daemon then answers at its own API
// version, and the fields read here have been stable since API 1.24, while a
// pinned version is refused by daemons that have raised their minimum.
type engine struct {
	client *http.Client
	base   string // "http://docker" for a unix socket, "http://host:port" for tcp
}

// errNotFound is a 404 from the Engine: the container is gone (destroyed).
var errNotFound = errors.New("no such container")

// newEngine connects to host, in DOCKER_HOST syntax: unix:///path or
// tcp://host:port (plain HTTP; TLS-protected daemons are not supported).
// An empty host means $DOCKER_HOST, else the default socket.
func newEngine(host string) (*engine, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &engine{client: &http.Client{Transport: tr}, base: "http://docker"}, nil
	case "tcp", "http":
		return &engine{client: &http.Client{Transport: &http.Transport{}}, base: "http://" + u.Host}, nil
	default:
		return nil, fmt.Errorf("docker host %q: want unix:///path/to/docker.sock or tcp://host:port", host)
	}
}

func (e *engine) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := e.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker engine: GET %s: %w", path, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("docker engine: GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

func (e *engine) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := e.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("docker engine: GET %s: decoding the answer: %w", path, err)
	}
	return nil
}

func labelFilter(extra map[string][]string) url.Values {
	f := map[string][]string{"label": {LabelService}}
	for k, v := range extra {
		f[k] = v
	}
	b, _ := json.Marshal(f)
	return url.Values{"filters": {string(b)}}
}

// running lists the ids of running containers labelled rune.service.
func (e *engine) running(ctx context.Context) ([]string, error) {
	var list []struct{ ID string }
	if err := e.getJSON(ctx, "/containers/json", labelFilter(nil), &list); err != nil {
		return nil, err
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	return ids, nil
}

// container is the part of GET /containers/{id}/json the source reads.
type container struct {
	ID     string
	Name   string
	Config struct{ Labels map[string]string }
	State  struct {
		Running bool
		Health  *struct{ Status string }
	}
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
	}
}

// inspect returns errNotFound once the container is destroyed.
func (e *engine) inspect(ctx context.Context, id string) (*container, error) {
	var c container
	if err := e.getJSON(ctx, "/containers/"+url.PathEscape(id)+"/json", nil, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// event is one message of GET /events.
type event struct {
	Type   string
	Action string // "start", "die", …, "health_status: healthy"
	Actor  struct{ ID string }
}

// watchedActions are the container events that can change an instance.
// "health_status" matches "health_status: <status>" (the Engine matches
// that filter by prefix).
var watchedActions = []string{"start", "die", "stop", "destroy", "health_status"}

// events opens the event stream of labelled containers. The caller reads
// it with a json.Decoder and closes it.
func (e *engine) events(ctx context.Context) (io.ReadCloser, error) {
	resp, err := e.get(ctx, "/events", labelFilter(map[string][]string{"type": {"container"}, "event": watchedActions}))
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
