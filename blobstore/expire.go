package blobstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ExpireUploads removes the sessions whose last activity (the store's clock at their
// creation or last Write, kept in the state file so it survives restarts) is more
// than UploadTTL before the clock's now, and returns how many it removed. A session
// with an operation in progress is skipped. A directory with no usable state file
// (creation interrupted by a crash) is removed once its modification time, by the
// filesystem's clock, is past the TTL. Removal errors do not stop the sweep; they are
// joined into the returned error.
func (s *Store) ExpireUploads() (int, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("expire uploads: %w", err)
	}
	defer s.exit()
	cutoff := s.now().Add(-s.ttl)
	entries, err := os.ReadDir(s.uploadsDir)
	if err != nil {
		return 0, fmt.Errorf("expire uploads: %w", err)
	}
	var errs []error
	n := 0
	for _, e := range entries {
		id := e.Name()
		if !e.IsDir() || checkID(id) != nil {
			continue // Put sessions and files that are not ours
		}
		u, err := s.session(id)
		if errors.Is(err, ErrUploadUnknown) {
			removed, err := s.expireOrphan(id)
			if err != nil {
				errs = append(errs, err)
			} else if removed {
				n++
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !u.op.TryLock() {
			continue // busy, so not idle
		}
		if !u.gone && u.updated.Before(cutoff) {
			if err := u.remove(); err != nil {
				errs = append(errs, fmt.Errorf("expire upload %s: %w", id, err))
			} else {
				n++
				s.m.uploadsExpired.Inc()
				s.log.Info("blobstore: upload expired", "id", id, "size", u.size.Load(), "last_activity", u.updated)
			}
		}
		u.op.Unlock()
	}
	return n, errors.Join(errs...)
}

// expireOrphan removes session directory id that has no usable state file if it is
// older than the TTL. A directory being created right now has a fresh modification
// time, so it is left alone.
func (s *Store) expireOrphan(id string) (bool, error) {
	dir := filepath.Join(s.uploadsDir, id)
	fi, err := os.Stat(dir)
	if err != nil {
		return false, nil // already gone (damaged sessions are removed when loaded)
	}
	// The modification time is the filesystem's clock, so it is compared with
	// the system clock, not Options.Clock (which may be skewed, as in tests).
	if time.Since(fi.ModTime()) <= s.ttl {
		return false, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("expire upload %s: %w", id, err)
	}
	s.m.uploadsOpen.Dec()
	s.m.uploadsExpired.Inc()
	s.log.Info("blobstore: removed upload without state", "id", id)
	return true, nil
}
