package node

import (
	"fmt"
	"syscall"

	"github.com/berth-registry/berth/api"
)

// diskUsage reports the file system that holds path, as df does: capacity and
// used from the total and free blocks, free as what an unprivileged process
// may still write (root's reserve excluded).
func diskUsage(path string) (api.DiskUsage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return api.DiskUsage{}, fmt.Errorf("node: statfs %s: %w", path, err)
	}
	bsize := uint64(st.Frsize)
	if bsize == 0 {
		bsize = uint64(st.Bsize)
	}
	return api.DiskUsage{
		CapacityBytes: st.Blocks * bsize,
		UsedBytes:     (st.Blocks - st.Bfree) * bsize,
		FreeBytes:     st.Bavail * bsize,
	}, nil
}
