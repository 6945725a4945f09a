//go:build !linux

package blobstore

import "os"

// startWriteback is a no-op where sync_file_range does not exist; Commit's fsync
// then flushes the whole upload.
func startWriteback(f *os.File, off, n int64) {}
