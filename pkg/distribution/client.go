package distribution

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// DefaultBackoff paces reconnects while the controller is away: 0.5 s,
// doubling with 20% jitter, up to 30 s between attempts.
var DefaultBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 1 << 30, Cap: 30 * time.Second}

// ClientOptions configures a Client.
type ClientOptions struct {
	// URL is the controller's API address, e.g.
	// "http://nodemesh-controller.nodemesh.svc:9000". When it has no path,
	// Path is appended; otherwise it is used as it is.
	URL string
	// Node is the node name reported to the controller.
	Node string
	// Wait is the long-poll duration asked of the server. Zero means
	// DefaultWait.
	Wait time.Duration
	// HTTPClient sends the polls; nil means a client of its own. Each
	// request is bounded by Wait plus a margin, so a client Timeout is not
	// needed.
	HTTPClient *http.Client
	// Backoff paces retries after a failed poll; a zero Duration means
	// DefaultBackoff.
	Backoff wait.Backoff
	// Logger receives poll failures and rejected tables; nil discards them.
	Logger *slog.Logger
	// Decoded, if set, is told how long each received table took to
	// decode (a delta: to rebuild into a whole table), failed or not.
	Decoded func(time.Duration)
}

// ClientStatus is a Client's view of its progress.
type ClientStatus struct {
	// Applied is the latest version apply accepted; polls ask the server
	// for any other version.
	Applied uint64
	// Ready is true once apply has accepted a table.
	Ready bool
	// Connected is true when the latest poll reached the server.
	Connected bool
	// LastError is the latest poll or apply failure, "" after a success.
	LastError string
}

// Client watches the controller's table. Its methods are safe for
// concurrent use.
type Client struct {
	opts ClientOptions
	url  *url.URL

	mu     sync.Mutex
	status ClientStatus

	// base is the table apply last accepted; polls offer it as the base of
	// a delta. Only Run's goroutine uses it.
	base *table.Table
}

// NewClient returns a Client for opts. It fails only on a URL that does not
// parse.
func NewClient(opts ClientOptions) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("controller URL %q: want http(s)://host[:port][/path]", opts.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = Path
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultWait
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               nil, // in-cluster: never through an HTTP_PROXY
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     opts.Wait + time.Minute,
		}}
	}
	if opts.Backoff.Duration <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Client{opts: opts, url: u}, nil
}

// Status returns the client's progress.
func (c *Client) Status() ClientStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Run polls until ctx is done, calling apply with each new table, and
// returns nil then. While the server is unreachable, or when apply rejects
// a table, the proxy keeps what it last applied and the client retries with
// backoff: a rejected version is fetched and offered again (a port that was
// busy may have been freed) until a newer one replaces it.
func (c *Client) Run(ctx context.Context, apply func(*table.Table) error) error {
	backoff := c.opts.Backoff
	for ctx.Err() == nil {
		t, err := c.poll(ctx)
		if err == nil && t != nil {
			if err = apply(t); err != nil {
				err = fmt.Errorf("apply version %d: %w", t.Version, err)
			} else {
				c.base = t
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.setError(err, t != nil)
			d := backoff.Step()
			c.opts.Logger.Warn("table watch: keeping the last good table", "err", err, "retryIn", d)
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			continue
		}
		backoff = c.opts.Backoff
		c.mu.Lock()
		c.status.Connected, c.status.LastError = true, ""
		if t != nil { // nil on 304: nothing new
			c.status.Applied, c.status.Ready = t.Version, true
		}
		c.mu.Unlock()
	}
	return nil
}

func (c *Client) setError(err error, connected bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Connected = connected
	c.status.LastError = ""
	if err != nil {
		c.status.LastError = err.Error()
	}
}

// pollMargin is how much longer than the asked wait a poll may take before
// the client gives up on it (network and server slack).
const pollMargin = 15 * time.Second

// poll sends one long poll. It returns a nil table on 304.
func (c *Client) poll(ctx context.Context) (*table.Table, error) {
	st := c.Status()
	u := *c.url
	q := u.Query()
	q.Set("version", strconv.FormatUint(st.Applied, 10))
	q.Set("node", c.opts.Node)
	q.Set("applied", strconv.FormatUint(st.Applied, 10))
	q.Set("ready", strconv.FormatBool(st.Ready))
	q.Set("wait", c.opts.Wait.String())
	base := c.base
	if base != nil && base.Version == st.Applied {
		q.Set("delta", "true")
		q.Set("runs", "true")
	} else {
		base = nil
	}
	u.RawQuery = q.Encode()

	ctx, cancel := context.WithTimeout(ctx, c.opts.Wait+pollMargin)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, nil
	case http.StatusOK:
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("controller answered %s: %s", resp.Status, msg)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, table.MaxEncodedSize+1))
	if err != nil {
		return nil, fmt.Errorf("read table: %w", err)
	}
	var t *table.Table
	if c.opts.Decoded != nil {
		start := time.Now()
		defer func() { c.opts.Decoded(time.Since(start)) }()
	}
	if hb := resp.Header.Get(HeaderBase); hb != "" {
		if base == nil {
			return nil, fmt.Errorf("controller sent a delta against version %s, which this client did not offer", hb)
		}
		if t, err = ApplyDelta(base, body); err != nil {
			c.base = nil // fetch the whole table next time
			return nil, err
		}
	} else if t, err = table.Decode(body); err != nil {
		return nil, err
	}
	if hv := resp.Header.Get(HeaderVersion); hv != "" && hv != strconv.FormatUint(t.Version, 10) {
		return nil, fmt.Errorf("table version %d disagrees with header %s=%s", t.Version, HeaderVersion, hv)
	}
	if t.Version == st.Applied {
		return nil, errors.New("server sent the version this client already has")
	}
	return t, nil
}
