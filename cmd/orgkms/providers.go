package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/metrics"
)

// providers builds the explicit registry of master-key drivers. The azurekv
// driver is registered when the platform's cloud is azure.
func providers(cfg config.Config, log *slog.Logger, m *metrics.Metrics) (*masterkey.Registry, *azurekv.Provider, error) {
	opts := masterkey.KeeperOptions{Logger: log}
	if m != nil {
		opts.Observer = m.ObserveMasterKey
	}
	r := masterkey.NewRegistry()
	r.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), opts))
	if cfg.CMK.Cloud != "azure" {
		return r, nil, nil
	}
	a := cfg.CMK.Azure
	hc, err := azureHTTPClient(a)
	if err != nil {
		return nil, nil, err
	}
	p, err := azurekv.New(azurekv.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret, AuthorityHost: a.AuthorityHost,
		ExtraHostSuffixes: a.ExtraHostSuffixes, HTTPClient: hc,
		Timeout: time.Duration(a.Timeout), TryTimeout: time.Duration(a.TryTimeout), MaxRetries: a.MaxRetries})
	if err != nil {
		return nil, nil, err
	}
	azOpts := opts
	// The driver bounds every call itself (cmk.azure.timeout, retries
	// included); the keeper's limit is only a backstop above it.
	azOpts.Timeout = p.Timeout() + time.Second
	r.Register(p.Driver(), masterkey.NewKeeper(azurekv.Scheme, p, azOpts))
	return r, p, nil
}

// azureHTTPClient trusts the configured extra CA and, for development and
// tests, sends every connection to the emulator.
func azureHTTPClient(a config.Azure) (*http.Client, error) {
	var pool *x509.CertPool
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cmk.azure.ca_file: %w", err)
		}
		pool, err = x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cmk.azure.ca_file %s holds no PEM certificate", a.CAFile)
		}
	}
	if a.EmulatorAddr != "" {
		if pool == nil {
			return nil, fmt.Errorf("cmk.azure.emulator_addr needs cmk.azure.ca_file (the emulator's ca.pem)")
		}
		return &http.Client{Transport: azureemu.Transport(strings.TrimPrefix(a.EmulatorAddr, "https://"), pool), Timeout: 60 * time.Second}, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}
