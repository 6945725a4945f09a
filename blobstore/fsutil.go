package blobstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// syncFile fsyncs the file at path.
func (s *Store) syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err = s.fault(FaultSync, path); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory, making the entries created or renamed in it durable.
func (s *Store) syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err = s.fault(FaultSync, dir); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirSynced creates dir if it is missing and fsyncs its parent so the new entry is
// durable before anything is renamed into it.
func (s *Store) mkdirSynced(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.syncDir(filepath.Dir(dir))
}

// rename is os.Rename, failing first if Options.Faults says so.
func (s *Store) rename(from, to string) error {
	if err := s.fault(FaultRename, from); err != nil {
		return err
	}
	return os.Rename(from, to)
}
