package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterPlatformKey adds the gauge orgkms_platform_key_stale_orgs, read
// from stale at scrape time: the orgs whose root key is wrapped by an
// older platform master key version (or a previous platform key), as this
// node last counted them. Alert when it stays above zero: the re-wrap job
// is stalled or failing, and the old version cannot be retired.
func (m *Metrics) RegisterPlatformKey(stale func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orgkms_platform_key_stale_orgs",
		Help: "Orgs whose root key is wrapped by an older platform master key version or a previous platform key, as this node last counted them (every platform_key_check)."}, stale))
}
