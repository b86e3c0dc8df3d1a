package annotations

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/vulcand/oxy/v2/cbreaker"
)

// Value parsers, one per key. Each sets its Policy field only on success.

func parseTrafficType(p *Policy, v string) error {
	switch t := TrafficType(strings.ToLower(strings.TrimSpace(v))); t {
	case TrafficHTTP, TrafficTCP, TrafficUDP:
		p.TrafficType = t
		return nil
	}
	return errors.New("want http, tcp or udp")
}

func parseScheme(p *Policy, v string) error {
	switch s := table.Scheme(strings.ToLower(strings.TrimSpace(v))); s {
	case table.SchemeHTTP, table.SchemeHTTPS, table.SchemeH2C:
		p.Scheme = s
		return nil
	}
	return errors.New("want http, https or h2c")
}

// maxRetryAttempts bounds retries: more attempts only multiply load on a
// failing backend.
const maxRetryAttempts = 10

func parseRetryAttempts(p *Policy, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > maxRetryAttempts {
		return fmt.Errorf("want an integer from 0 to %d", maxRetryAttempts)
	}
	p.RetryAttempts = n
	return nil
}

func parseRateLimitAverage(p *Policy, v string) error {
	n, err := parsePositive(v)
	if err != nil {
		return err
	}
	p.RateLimitAverage = n
	return nil
}

func parseRateLimitBurst(p *Policy, v string) error {
	n, err := parsePositive(v)
	if err != nil {
		return err
	}
	p.RateLimitBurst = n
	return nil
}

func parsePositive(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive integer")
	}
	return n, nil
}

func parseCircuitBreaker(p *Policy, v string) error {
	expr := strings.TrimSpace(v)
	if expr == "" {
		return errors.New("empty expression")
	}
	if err := checkCircuitBreaker(expr); err != nil {
		return fmt.Errorf("not an oxy circuit breaker expression: %v", err)
	}
	p.CircuitBreaker = expr
	return nil
}

// cbCache memoizes expression checks. The controller must reject a bad
// expression here (the proxy applies a table all-or-nothing, so one bad
// expression would otherwise block every service), and oxy only exposes its
// parser through cbreaker.New, which allocates ~160 KiB of metrics per call.
// Most clusters use a handful of distinct expressions, so a small cache keeps
// a 10,000-service build cheap. The result depends only on the expression,
// so the cache never changes an answer.
var cbCache = struct {
	sync.Mutex
	m map[string]error
}{m: map[string]error{}}

// cbCacheMax bounds the cache; past it, checks are simply not remembered.
const cbCacheMax = 1024

func checkCircuitBreaker(expr string) error {
	cbCache.Lock()
	err, ok := cbCache.m[expr]
	cbCache.Unlock()
	if ok {
		return err
	}
	_, err = cbreaker.New(nil, expr)
	cbCache.Lock()
	if len(cbCache.m) < cbCacheMax {
		cbCache.m[expr] = err
	}
	cbCache.Unlock()
	return err
}
