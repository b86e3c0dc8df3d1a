package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"time"
)

// fileRetry is how often a file whose table was rejected is offered again
// while it stays unchanged: a failure may pass (a port that was busy).
const fileRetry = 10 * time.Second

// fileWatcher applies the table in a file whenever the file's content
// changes. It polls the file's size and modification time, and rereads it
// only when they change, so an idle proxy does almost nothing. Polling
// rather than fsnotify: no new dependency, and it works the same for a
// ConfigMap volume's symlink swaps.
type fileWatcher struct {
	path     string
	interval time.Duration
	apply    func([]byte) error // decodes and applies
	log      *slog.Logger

	stamp    fileStamp
	sum      [32]byte // content of the latest table tried
	failedAt time.Time
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

func (w *fileWatcher) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.check()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check applies the file if it changed, or retries a rejected content.
func (w *fileWatcher) check() {
	fi, err := os.Stat(w.path)
	if err != nil {
		if w.stamp != (fileStamp{}) || w.sum == ([32]byte{}) {
			w.log.Warn("table file unreadable; keeping the current table", "file", w.path, "err", err)
		}
		w.stamp = fileStamp{}
		return
	}
	stamp := fileStamp{fi.Size(), fi.ModTime()}
	retry := !w.failedAt.IsZero() && time.Since(w.failedAt) >= fileRetry
	if stamp == w.stamp && !retry {
		return
	}
	w.stamp = stamp
	b, err := os.ReadFile(w.path)
	if err != nil {
		w.log.Warn("table file unreadable; keeping the current table", "file", w.path, "err", err)
		return
	}
	sum := sha256.Sum256(b)
	if bytes.Equal(sum[:], w.sum[:]) && !retry {
		return // touched, not changed
	}
	w.sum = sum
	if err := w.apply(b); err != nil {
		w.failedAt = time.Now()
		w.log.Error("table file rejected; keeping the current table", "file", w.path, "err", err)
		return
	}
	w.failedAt = time.Time{}
}
