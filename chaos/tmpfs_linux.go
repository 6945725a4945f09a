//go:build linux

package chaos

import (
	"os"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a 256 MiB tmpfs on dir (root only).
func mountTmpfs(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=256m,mode=0755"); err != nil {
		return nil, err
	}
	return func() { _ = unix.Unmount(dir, unix.MNT_DETACH) }, nil
}
