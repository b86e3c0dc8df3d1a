package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestObservabilityOptions(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // error text, "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"no sampling", func(c *Config) { c.AccessLogSampleRatio = 0 }, "access-log-sample-ratio 0"},
		{"ratio above one", func(c *Config) { c.AccessLogSampleRatio = 1.5 }, "access-log-sample-ratio 1.5"},
		{"negative cap", func(c *Config) { c.AccessLogMaxPerSecond = -1 }, "access-log-max-per-second -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TableFile = "table.json"
			tc.edit(&cfg)
			err := cfg.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAccessLogFileIsOpenedAndClosed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TableFile = "table.json"
	cfg.AccessLog = filepath.Join(t.TempDir(), "access.log")
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.obs.log == nil {
		t.Fatal("no access log")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.AccessLog); err != nil {
		t.Error(err)
	}
	cfg.AccessLog = filepath.Join(t.TempDir(), "missing-dir", "access.log")
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "access-log") {
		t.Errorf("an access log that cannot be opened: %v", err)
	}
}
