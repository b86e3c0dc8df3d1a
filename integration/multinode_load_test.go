package integration_test

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// meshOutcome is one request of a load run.
type meshOutcome struct {
	node       string // the client's node
	start, end time.Time
	err        error
	servedBy   string // the node whose proxy forwarded it, when it succeeded
	fromClient bool   // X-Forwarded-For is the client pod's IP
}

// meshLoad is steady traffic from the client pods of some nodes: a few workers
// per node, each sending a request (worker w's waits 200*w ms at the
// backend), waiting gap, and so on, until stopped, until limit requests were
// sent in all, or until maxDuration passed.
type meshLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	out    []meshOutcome
}

// startMeshLoad starts the workers; stop ends them and returns the outcomes.
func startMeshLoad(ctx context.Context, all, from []*meshNode, workers int, gap time.Duration, limit int, maxDuration time.Duration) *meshLoad {
	ctx, cancel := context.WithTimeout(ctx, maxDuration)
	l := &meshLoad{cancel: cancel}
	var sent sync.Mutex
	count := 0
	take := func() bool {
		sent.Lock()
		defer sent.Unlock()
		count++
		return count <= limit
	}
	for _, n := range from {
		for w := range workers {
			// Some requests wait at the backend, so that connections are
			// open through the proxy at any instant.
			url := fmt.Sprintf("http://web.shop.mesh/?delay=%dms", 200*w)
			l.wg.Go(func() {
				for ctx.Err() == nil && take() {
					o := meshOutcome{node: n.Name, start: time.Now()}
					// A request is not cut short by stop: it runs to its
					// own client timeout, so none fails because the test
					// stopped looking.
					who, err := n.meshGet(context.WithoutCancel(ctx), url)
					o.end, o.err = time.Now(), err
					if err == nil {
						o.servedBy = servingNode(all, who)
						o.fromClient = who.Request.Headers.Get("X-Forwarded-For") == n.client.IP.String()
					}
					l.mu.Lock()
					l.out = append(l.out, o)
					l.mu.Unlock()
					select {
					case <-ctx.Done():
					case <-time.After(gap):
					}
				}
			})
		}
	}
	return l
}

// stop ends the run and returns every meshOutcome.
func (l *meshLoad) stop() []meshOutcome {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out
}
