package blobstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to disk without
// waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE). Dirty pages of a large
// upload then drain while it streams, and Commit's fsync finds little left to flush.
// It is advice: errors (a filesystem without support) are ignored, and durability
// still comes only from fsync.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
