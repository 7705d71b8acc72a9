package server

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/notify"
)

// openWebhooks builds the webhook service from cfg.Webhooks: new secrets
// are wrapped by the platform master key.
func openWebhooks(cfg config.Config, opts Options, s *Server, platform masterkey.Ref, log *slog.Logger) (*notify.Service, error) {
	w := cfg.Webhooks
	var roots *x509.CertPool
	if w.CAFile != "" {
		pem, err := os.ReadFile(w.CAFile)
		if err != nil {
			return nil, fmt.Errorf("webhooks.ca_file: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("webhooks.ca_file: no PEM certificate in the file")
		}
	}
	return notify.New(notify.Config{Store: s.Store, Keepers: s.Registry, PlatformKey: platform.Unversioned(), NodeID: s.NodeID,
		AllowHTTP: w.AllowHTTP, AllowPrivate: w.AllowPrivateAddresses, RootCAs: roots,
		Timeout: time.Duration(w.Timeout), MaxAttempts: w.MaxAttempts, MaxAge: time.Duration(w.MaxAge),
		Backoff: time.Duration(w.Backoff), MaxBackoff: time.Duration(w.MaxBackoff), Poll: time.Duration(w.Poll), Workers: w.Workers,
		Now: opts.Now, Logger: log.With(slog.String("component", "webhooks")), Registerer: s.Metrics.Registry})
}
