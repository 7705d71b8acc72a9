package kmsplugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	kmsapi "k8s.io/kms/apis/v2"
)

// SocketPath returns the file of a unix:// endpoint, as kube-apiserver's
// EncryptionConfiguration names it (unix:///var/run/orgkms-kms.sock). An
// abstract socket (unix:///@name) is refused: the plugin's socket is a
// file with mode 0600, so only the apiserver's user reaches it.
func SocketPath(endpoint string) (string, error) {
	path, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok {
		return "", fmt.Errorf("endpoint %q: want unix:///path/to/socket (kube-apiserver speaks KMS v2 over a unix socket only)", endpoint)
	}
	if path == "" || !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("endpoint %q: want an absolute socket path, unix:///path/to/socket", endpoint)
	}
	if strings.HasPrefix(path, "/@") {
		return "", fmt.Errorf("endpoint %q: abstract sockets have no file mode to restrict access; use a socket file", endpoint)
	}
	return path, nil
}

// Listen listens on the unix socket of endpoint (see [SocketPath]). A
// socket file left by an earlier run is removed first; any other file there
// is an error. The socket's mode is 0600.
func Listen(endpoint string) (net.Listener, error) {
	path, err := SocketPath(endpoint)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen %s: the file exists and is not a socket; remove it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod 0600 %s: %w", path, err)
	}
	return ln, nil
}

// Serve serves the plugin on ln until ctx is done, then stops gracefully
// (in-flight calls finish, at most 5 seconds) and closes ln, which removes
// its socket file. In the background it refreshes the plugin's state every
// RefreshInterval, which keeps the connection to orgkms warm.
func (p *Plugin) Serve(ctx context.Context, ln net.Listener) error {
	gs := grpc.NewServer(grpc.ConnectionTimeout(5 * time.Second))
	kmsapi.RegisterKeyManagementServiceServer(gs, p)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(p.cfg.RefreshInterval)
		defer t.Stop()
		p.Refresh(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.Refresh(ctx)
			}
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			gs.Stop()
			<-stopped
		}
	})
	p.log.Info("kms plugin serving", slog.String("org_id", p.cfg.Org), slog.String("key_ring", p.cfg.Key), slog.String("addr", ln.Addr().String()))
	err := gs.Serve(ln)
	cancel()
	wg.Wait()
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}
