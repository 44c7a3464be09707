package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/runenet/runenet/cluster"
	"github.com/runenet/runenet/orderedlog"
)

// Client talks to a runed. It also implements cluster.Source, so a View in
// another process (plugin/rune inside a stock CoreDNS) can follow runed's log.
type Client struct {
	addr  string // as given, for errors
	base  string
	token string
	http  *http.Client
	// linearizable marks every read ?linearizable=true (LinearizableReads).
	linearizable bool
}

// ClientOption adjusts a Client.
type ClientOption func(*clientOptions)

type clientOptions struct {
	caFile       string
	linearizable bool
}

// WithCA makes the client talk TLS to a tcp:// address (https:// always is)
// and trust the PEM certificates in file — runed's API certificate or the CA
// that issued it — instead of the system's roots.
func WithCA(file string) ClientOption { return func(o *clientOptions) { o.caFile = file } }

// LinearizableReads makes every read (lists and gets, not watches) reflect
// each write acknowledged anywhere in the cluster before it, at the cost of
// a round through the Raft leader per read (see LinearizableParam).
func LinearizableReads() ClientOption { return func(o *clientOptions) { o.linearizable = true } }

// NewClient accepts "unix:///path/runed.sock", "tcp://host:port" or
// "http(s)://host:port".
func NewClient(addr, token string, opts ...ClientOption) (*Client, error) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{addr: addr, token: token, linearizable: o.linearizable}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("api CA: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api CA %s: no PEM certificate in it", o.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	switch {
	case o.caFile != "" && strings.HasPrefix(addr, "unix://"):
		return nil, fmt.Errorf("api address %s: a CA is for a TLS API (https:// or tcp://), not a unix socket", addr)
	case o.caFile != "" && strings.HasPrefix(addr, "tcp://"):
		c.base = "https://" + strings.TrimPrefix(addr, "tcp://")
	case strings.HasPrefix(addr, "unix://"):
		path := strings.TrimPrefix(addr, "unix://")
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://runed"
	case strings.HasPrefix(addr, "tcp://"):
		c.base = "http://" + strings.TrimPrefix(addr, "tcp://")
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		c.base = strings.TrimSuffix(addr, "/")
	default:
		return nil, fmt.Errorf("api address %q: want unix:///path/to/runed.sock, tcp://host:port or http(s)://host:port", addr)
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// UnreachableError is a failure to reach runed at all: nothing listens at
// Addr, or the connection broke.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return "cannot reach runed at " + e.Addr + ": " + e.Err.Error()
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// APIError is a failure runed reported.
type APIError struct {
	Status int
	Kind   string
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("runed's answer is not the JSON this rune expects (is rune older than runed?): %w", err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	if c.linearizable && method == http.MethodGet && !strings.HasPrefix(path, "/v1/watch") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + LinearizableParam + "=true"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The request URL is the client's own (http://runed/... over a
		// socket) and the dial error repeats the address: keep only why.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			err = oe.Err
		}
		return nil, &UnreachableError{Addr: c.addr, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e ErrorResponse
		switch {
		case json.Unmarshal(body, &e) == nil && e.Error != "":
		case bytes.Contains(body, []byte("HTTP request to an HTTPS server")):
			// Go's TLS server answers plain HTTP so.
			e.Error = "runed's API at " + c.base + " serves TLS: address it as https://HOST:PORT, or pass its certificate (or CA) with --ca"
		default:
			e.Error = resp.Status
		}
		return nil, &APIError{Status: resp.StatusCode, Kind: e.Kind, Msg: e.Error}
	}
	return resp, nil
}

func (c *Client) Cast(ctx context.Context, files []CastFile) (*CastResponse, error) {
	var out CastResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/cast", CastRequest{Files: files}, &out)
}

func nsQuery(ns string) string {
	if ns == "" {
		return ""
	}
	return "?namespace=" + url.QueryEscape(ns)
}

// Services lists services of ns ("" = all namespaces).
func (c *Client) Services(ctx context.Context, ns string) (*ServiceList, error) {
	var out ServiceList
	return &out, c.do(ctx, http.MethodGet, "/v1/services"+nsQuery(ns), nil, &out)
}

// CreateJoinToken asks the node for a join token valid for ttl (0: the
// node's default).
func (c *Client) CreateJoinToken(ctx context.Context, ttl time.Duration) (*JoinToken, error) {
	var req JoinTokenRequest
	if ttl != 0 {
		req.TTL = ttl.String()
	}
	var out JoinToken
	return &out, c.do(ctx, http.MethodPost, "/v1/cluster/join-tokens", req, &out)
}

// RemoveNode removes the named node from the cluster.
func (c *Client) RemoveNode(ctx context.Context, name string) error {
	var out NodeRemoved
	return c.do(ctx, http.MethodDelete, "/v1/nodes/"+url.PathEscape(name), nil, &out)
}

// Nodes lists the cluster's members as the node asked knows them.
func (c *Client) Nodes(ctx context.Context) (*NodeList, error) {
	var out NodeList
	return &out, c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
}

func (c *Client) DeleteService(ctx context.Context, ns, name string) (uint64, error) {
	var out SeqResponse
	err := c.do(ctx, http.MethodDelete, "/v1/services/"+url.PathEscape(ns)+"/"+url.PathEscape(name), nil, &out)
	return out.Seq, err
}

func (c *Client) Endpoints(ctx context.Context, ns string) (*EndpointsList, error) {
	var out EndpointsList
	return &out, c.do(ctx, http.MethodGet, "/v1/endpoints"+nsQuery(ns), nil, &out)
}

func (c *Client) Instances(ctx context.Context, ns string) (*InstanceList, error) {
	var out InstanceList
	return &out, c.do(ctx, http.MethodGet, "/v1/instances"+nsQuery(ns), nil, &out)
}

func (c *Client) RegisterInstance(ctx context.Context, req RegisterInstanceRequest) (uint64, error) {
	var out SeqResponse
	err := c.do(ctx, http.MethodPost, "/v1/instances", req, &out)
	return out.Seq, err
}

func (c *Client) SetInstanceReady(ctx context.Context, id string, ready bool) (uint64, error) {
	var out SeqResponse
	err := c.do(ctx, http.MethodPut, "/v1/instances/"+url.PathEscape(id)+"/ready", ReadyRequest{Ready: ready}, &out)
	return out.Seq, err
}

func (c *Client) DeregisterInstance(ctx context.Context, id string) (uint64, error) {
	var out SeqResponse
	err := c.do(ctx, http.MethodDelete, "/v1/instances/"+url.PathEscape(id), nil, &out)
	return out.Seq, err
}

// Policies lists the services with a network policy in ns ("" = all).
func (c *Client) Policies(ctx context.Context, ns string) (*PolicyList, error) {
	var out PolicyList
	return &out, c.do(ctx, http.MethodGet, "/v1/policies"+nsQuery(ns), nil, &out)
}

// CheckPolicy asks how runed's node would decide a new connection.
func (c *Client) CheckPolicy(ctx context.Context, req PolicyCheckRequest) (*PolicyCheckResponse, error) {
	var out PolicyCheckResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/policy/check", req, &out)
}

func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	return &out, c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
}

func (c *Client) PauseWatch(ctx context.Context, seconds float64) error {
	return c.do(ctx, http.MethodPost, "/v1/debug/pause-watch", PauseRequest{Seconds: seconds}, nil)
}

// Ingresses lists the edge routes of the node the client talks to.
func (c *Client) Ingresses(ctx context.Context, ns string) (*IngressList, error) {
	var out IngressList
	return &out, c.do(ctx, http.MethodGet, "/v1/ingresses"+nsQuery(ns), nil, &out)
}

// CreateTLSSecret validates and stores a certificate and key, and says what
// it did: created, configured or unchanged.
func (c *Client) CreateTLSSecret(ctx context.Context, req TLSSecretRequest) (string, error) {
	var out SecretResponse
	err := c.do(ctx, http.MethodPost, "/v1/secrets/tls", req, &out)
	return out.Action, err
}

// Secrets describes the secrets of ns ("" = all namespaces), without keys.
func (c *Client) Secrets(ctx context.Context, ns string) (*SecretList, error) {
	var out SecretList
	return &out, c.do(ctx, http.MethodGet, "/v1/secrets"+nsQuery(ns), nil, &out)
}

func (c *Client) DeleteSecret(ctx context.Context, ns, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/secrets/"+url.PathEscape(ns)+"/"+url.PathEscape(name), nil, nil)
}

// PortForward opens a forward and returns its address; it stays open until
// ctx ends. denied (if not nil) is called for every connection the
// service's policy refuses.
func (c *Client) PortForward(ctx context.Context, req PortForwardRequest, denied func(PortForwardDenial)) (netip.AddrPort, error) {
	resp, err := c.send(ctx, http.MethodPost, "/v1/port-forward", req)
	if err != nil {
		return netip.AddrPort{}, err
	}
	dec := json.NewDecoder(resp.Body)
	var opened PortForwardEvent
	if err := dec.Decode(&opened); err != nil {
		resp.Body.Close()
		return netip.AddrPort{}, fmt.Errorf("port-forward: %w", err)
	}
	// Closing the body (when ctx ends) is what closes the forward in runed.
	context.AfterFunc(ctx, func() { resp.Body.Close() })
	go func() {
		for {
			var ev PortForwardEvent
			if dec.Decode(&ev) != nil {
				return
			}
			if ev.Denied != nil && denied != nil {
				denied(*ev.Denied)
			}
		}
	}()
	return opened.Address, nil
}

// List returns runed's state under prefix (secrets and certificates are
// never sent) and the seq it reflects.
func (c *Client) List(ctx context.Context, prefix string) ([]orderedlog.KV, uint64, error) {
	var out KVList
	err := c.do(ctx, http.MethodGet, "/v1/list?prefix="+url.QueryEscape(prefix), nil, &out)
	return out.KVs, out.Seq, err
}

// ListFunc implements cluster.Source.
func (c *Client) ListFunc(ctx context.Context, prefix string, fn func(orderedlog.KV) error) (uint64, error) {
	kvs, seq, err := c.List(ctx, prefix)
	if err != nil {
		return 0, err
	}
	for _, kv := range kvs {
		if err := fn(kv); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// Watch implements cluster.Source over runed's /v1/watch stream.
func (c *Client) Watch(ctx context.Context, from uint64) (<-chan orderedlog.Event, error) {
	resp, err := c.send(ctx, http.MethodGet, fmt.Sprintf("/v1/watch?from=%d", from), nil)
	if err != nil {
		return nil, err
	}
	ch := make(chan orderedlog.Event, 256)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), maxBody)
		for sc.Scan() {
			var we WatchEvent
			ev := orderedlog.Event{}
			if err := json.Unmarshal(sc.Bytes(), &we); err != nil {
				ev.Err = fmt.Errorf("watch stream: %w", err)
			} else {
				ev.Batch, ev.Tail, ev.SinceLeader = we.Batch, we.Tail, time.Duration(we.SinceLeaderMs)*time.Millisecond
				switch we.Error {
				case "":
				case "compacted":
					ev.Err = orderedlog.ErrCompacted
				default:
					ev.Err = errors.New(we.Error)
				}
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Err != nil {
				return
			}
		}
	}()
	return ch, nil
}

var _ cluster.Source = (*Client)(nil)
