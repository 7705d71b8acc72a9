package main

import (
	"log/slog"

	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/metrics"
)

// providers builds the explicit registry of master-key drivers.
func providers(log *slog.Logger, m *metrics.Metrics) *masterkey.Registry {
	opts := masterkey.KeeperOptions{Logger: log}
	if m != nil {
		opts.Observer = m.ObserveMasterKey
	}
	r := masterkey.NewRegistry()
	r.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), opts))
	return r
}
