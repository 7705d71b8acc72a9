package server

import (
	"log/slog"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/metrics"
)

// TestProvidersAzureBounds: cmk.azure.timeout reaches the Azure driver;
// without it the driver's short default applies.
func TestProvidersAzureBounds(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{"default", 0, azurekv.DefaultTimeout},
		{"configured", 2 * time.Second, 2 * time.Second},
	}
	zero := func() float64 { return 0 }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Config{CMK: config.CMK{Cloud: "azure", Azure: config.Azure{ClientID: "app", ClientSecret: "s", Timeout: config.Duration(tt.timeout)}}}
			_, p, err := providers(cfg, Options{}, slog.New(slog.DiscardHandler), metrics.New(zero, zero, zero))
			if err != nil {
				t.Fatal(err)
			}
			if p.Timeout() != tt.want {
				t.Fatalf("azurekv timeout = %v, want %v", p.Timeout(), tt.want)
			}
		})
	}
}
