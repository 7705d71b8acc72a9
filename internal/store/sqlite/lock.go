package sqlite

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/orgkms/orgkms/internal/fault"
)

// LockFile is the name of the lock file that [Open] holds in the database's
// directory (the data directory) for as long as the store is open.
const LockFile = "orgkms.lock"

// ErrDataDirInUse is wrapped by the error of [Open] when another store
// holds the data directory.
var ErrDataDirInUse = errors.New("data directory in use")

// lockDir takes an exclusive flock(2) on dir/orgkms.lock and writes this
// process's ID into it. Another open store on the same directory, in this
// process or another, makes it fail with Kind Conflict naming the directory
// and the holder's process ID. The kernel drops the lock when the process
// ends, however it ends, so a crash never leaves the directory locked.
func lockDir(dir string, log *slog.Logger) (*os.File, error) {
	const op = "lock data directory"
	name := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "data directory " + dir, Reason: "cannot create the lock file " + name, Err: err}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(name); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(b), "pid "))); perr == nil && pid > 0 {
				holder = "process " + strconv.Itoa(pid)
				if pid == os.Getpid() {
					holder += " (this process: the store is already open)"
				}
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &fault.Error{Kind: fault.Conflict, Op: op, Resource: "data directory " + dir,
				Reason: fmt.Sprintf("data directory %s is in use by another orgkms server (%s); stop it, or give this server its own data directory", dir, holder),
				Err:    errors.Join(ErrDataDirInUse, err)}
		}
		return nil, &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "data directory " + dir, Reason: "cannot lock " + name, Err: err}
	}
	// The pid is informative; failing to write it (a full disk) does not
	// make the lock less held.
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		log.Warn("cannot write the process ID into the lock file", slog.String("path", name), slog.String("error", err.Error()))
	}
	return f, nil
}
