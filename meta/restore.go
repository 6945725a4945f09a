package meta

import "bytes"

// Offline helpers of backup and restore. They run on a state that no Raft
// node serves yet (a restore seeds a new node's data directory), never through
// Apply.

// RelocateBlobs makes node the only location of every recorded blob that
// present reports as held by node, and removes every other location (the nodes
// of the cluster the state was backed up from). A blob that present denies
// keeps no location. It returns how many blobs were relocated.
func RelocateBlobs(txn Txn, node string, present func(Digest) bool) (int, error) {
	var digests []Digest
	err := scanPrefix(txn, []byte("b/"), nil, func(k, _ []byte) error {
		digests = append(digests, Digest(k[2:]))
		return nil
	})
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, d := range digests {
		var old [][]byte
		err := scanPrefix(txn, blobNodePrefix(d), nil, func(k, _ []byte) error {
			old = append(old, bytes.Clone(k))
			return nil
		})
		if err != nil {
			return moved, err
		}
		for _, k := range old {
			if err := txn.Delete(k); err != nil {
				return moved, err
			}
		}
		if present(d) {
			if err := txn.Set(blobNodeKey(d, node), nil); err != nil {
				return moved, err
			}
			moved++
		}
	}
	return moved, nil
}

// Counts are the sizes of the main tables of a state, for a backup's
// description.
type Counts struct {
	Repositories int    `json:"repositories"`
	Manifests    int    `json:"manifests"`
	Tags         int    `json:"tags"`
	Blobs        int    `json:"blobs"`
	BlobBytes    int64  `json:"blob_bytes"`
	Users        int    `json:"users"`
	Projects     int    `json:"projects"`
	Workspaces   int    `json:"workspaces"`
	AuditEvents  uint64 `json:"audit_events"`
}

// Count counts the main tables of r.
func Count(r Reader) (Counts, error) {
	var c Counts
	for _, t := range []struct {
		prefix string
		n      *int
	}{
		{"r/", &c.Repositories}, {"m/", &c.Manifests}, {"t/", &c.Tags},
		{"u/", &c.Users}, {"p/", &c.Projects}, {"w/", &c.Workspaces},
	} {
		err := scanPrefix(r, []byte(t.prefix), nil, func(_, _ []byte) error {
			*t.n++
			return nil
		})
		if err != nil {
			return c, err
		}
	}
	err := ScanBlobs(r, "", func(b *Blob) error {
		c.Blobs++
		c.BlobBytes += b.Size
		return nil
	})
	if err != nil {
		return c, err
	}
	c.AuditEvents, err = auditCount(r)
	return c, err
}
