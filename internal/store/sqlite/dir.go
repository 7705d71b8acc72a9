package sqlite

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
)

// TightenDir makes the data directory dir accessible by its owner only
// (mode 0700): it holds the database, the platform master key, the node
// identity and the bootstrap token. A wider mode is tightened with a
// warning. A directory owned by another user, or a shared sticky one such
// as /tmp, is left as it is, with a warning: its mode is not orgkms' to
// change. It returns an error only when dir cannot be inspected or changed.
func TightenDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	mode := fi.Mode()
	if mode.Perm()&0o077 == 0 {
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); mode&fs.ModeSticky != 0 || (ok && int(st.Uid) != os.Geteuid()) {
		log.Warn("data directory is accessible by other users and is not this process's to tighten; give orgkms a directory of its own, mode 0700",
			slog.String("path", dir), slog.String("mode", mode.String()))
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("tighten data directory %s to 0700: %w", dir, err)
	}
	log.Warn("data directory was accessible by other users; tightened it to 0700", slog.String("path", dir), slog.String("was", mode.Perm().String()))
	return nil
}
