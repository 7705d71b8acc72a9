package azureemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Files kept in Config.Dir.
const (
	caCertFile   = "ca.pem"
	caKeyFile    = "ca-key.pem"
	leafCertFile = "tls.pem"
	leafKeyFile  = "tls-key.pem"
)

// certDNSNames are the DNS SANs of the emulator's server certificate.
var certDNSNames = []string{
	"*.vault.azure.net",
	"*.vault.azure.cn",
	"*.vault.usgovcloudapi.net",
	"*.managedhsm.azure.net",
	"login.microsoftonline.com",
	"localhost",
}

// certIPs are the IP SANs of the emulator's server certificate.
var certIPs = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}

type tlsMaterial struct {
	caCert *x509.Certificate
	caPEM  []byte
	leaf   tls.Certificate
}

// loadOrCreateTLS loads the CA and leaf from dir, creating what is missing.
// The leaf is reissued (by the same CA) when it expires within 30 days or
// lacks a SAN. extraHost is a listen host to add to the SANs, if any.
func loadOrCreateTLS(dir, extraHost string) (*tlsMaterial, error) {
	caCert, caKey, caPEM, err := loadCA(dir)
	if err != nil {
		return nil, err
	}
	if caCert == nil {
		caCert, caKey, caPEM, err = newCA()
		if err != nil {
			return nil, err
		}
		if dir != "" {
			keyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
			if err != nil {
				return nil, fmt.Errorf("encode emulator CA key: %w", err)
			}
			if err := writeFileAtomic(filepath.Join(dir, caKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
				return nil, err
			}
			if err := writeFileAtomic(filepath.Join(dir, caCertFile), caPEM, 0o644); err != nil {
				return nil, err
			}
		}
	}
	dns, ips := certSANs(extraHost)
	if dir != "" {
		leaf, err := tls.LoadX509KeyPair(filepath.Join(dir, leafCertFile), filepath.Join(dir, leafKeyFile))
		if err == nil && leafUsable(leaf, caCert, dns, ips) {
			return &tlsMaterial{caCert: caCert, caPEM: caPEM, leaf: leaf}, nil
		}
	}
	certPEM, keyPEM, err := newLeaf(caCert, caKey, dns, ips)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := writeFileAtomic(filepath.Join(dir, leafKeyFile), keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(dir, leafCertFile), certPEM, 0o644); err != nil {
			return nil, err
		}
	}
	leaf, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("emulator TLS certificate: %w", err)
	}
	return &tlsMaterial{caCert: caCert, caPEM: caPEM, leaf: leaf}, nil
}

func certSANs(extraHost string) ([]string, []net.IP) {
	dns := slices.Clone(certDNSNames)
	ips := slices.Clone(certIPs)
	if extraHost != "" {
		if ip := net.ParseIP(extraHost); ip != nil {
			if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(dns, strings.ToLower(extraHost)) {
			dns = append(dns, strings.ToLower(extraHost))
		}
	}
	return dns, ips
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	if dir == "" {
		return nil, nil, nil, nil
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read emulator CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read emulator CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, nil, errors.New("emulator CA: no PEM data")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("emulator CA: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("emulator CA key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, nil, errors.New("emulator CA key is not ECDSA")
	}
	return cert, key, certPEM, nil
}

func newCA() (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate emulator CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "orgkms Azure emulator CA " + newHexID(4), Organization: []string{"orgkms emulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create emulator CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create emulator CA: %w", err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, dns []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate emulator TLS key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "orgkms Azure emulator"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create emulator TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode emulator TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// leafUsable reports whether a stored leaf is signed by ca, valid for 30 more
// days and carries every wanted SAN.
func leafUsable(leaf tls.Certificate, ca *x509.Certificate, dns []string, ips []net.IP) bool {
	if len(leaf.Certificate) == 0 {
		return false
	}
	c, err := x509.ParseCertificate(leaf.Certificate[0])
	if err != nil || c.CheckSignatureFrom(ca) != nil {
		return false
	}
	if time.Until(c.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, d := range dns {
		if !slices.Contains(c.DNSNames, d) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

// DialContext returns a dial function that connects every address to
// emulatorAddr (host:port, or a URL such as https://127.0.0.1:8443), like an
// /etc/hosts entry that points every name at the emulator.
func DialContext(emulatorAddr string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	target := hostPort(emulatorAddr)
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, target)
	}
}

// Transport returns an HTTP transport that sends every request to the
// emulator at emulatorAddr (host:port or URL) and verifies the server
// certificate against caPool using the original host name (SNI), so
// https://demo.vault.azure.net reaches the emulator and is verified as
// demo.vault.azure.net.
func Transport(emulatorAddr string, caPool *x509.CertPool) *http.Transport {
	return &http.Transport{
		DialContext:           DialContext(emulatorAddr),
		TLSClientConfig:       &tls.Config{RootCAs: caPool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// hostPort extracts host:port from an address or URL.
func hostPort(addr string) string {
	if strings.Contains(addr, "://") {
		if u, err := url.Parse(addr); err == nil && u.Host != "" {
			if u.Port() == "" {
				return net.JoinHostPort(u.Hostname(), "443")
			}
			return u.Host
		}
	}
	return addr
}

// CAPoolFromFile reads a PEM CA bundle, such as the emulator's ca.pem.
func CAPoolFromFile(name string) (*x509.CertPool, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read emulator CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("read emulator CA %s: no certificate", filepath.Base(name))
	}
	return pool, nil
}

// ConsentPageHandler serves only the admin-consent pages of the emulator
// (GET and POST /{tenant}/adminconsent and /{tenant}/v2.0/adminconsent),
// for a plain-HTTP loopback listener in development: a browser then reaches
// the consent page without a certificate warning, while the SDK keeps
// talking TLS to the token endpoint and the vaults.
func (e *Emulator) ConsentPageHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		ok := (len(parts) == 2 && parts[1] == "adminconsent") || (len(parts) == 3 && parts[1] == "v2.0" && parts[2] == "adminconsent")
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
			http.NotFound(w, r)
			return
		}
		e.Handler().ServeHTTP(w, r)
	})
}
