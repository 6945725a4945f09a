package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// GetRepository returns a repository, or ErrNameUnknown.
func GetRepository(r Reader, repo string) (*Repository, error) {
	v, err := r.Get(repoKey(repo))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNameUnknown, repo)
	}
	if err != nil {
		return nil, err
	}
	out := &Repository{Name: repo}
	if err := json.Unmarshal(v, out); err != nil {
		return nil, fmt.Errorf("meta: corrupt repository %s: %w", repo, err)
	}
	return out, nil
}

// GetBlob returns a recorded blob regardless of repository, or ErrBlobUnknown.
func GetBlob(r Reader, d Digest) (*Blob, error) {
	v, err := r.Get(blobKey(d))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	if err != nil {
		return nil, err
	}
	out := &Blob{Digest: d}
	if err := json.Unmarshal(v, out); err != nil {
		return nil, fmt.Errorf("meta: corrupt blob %s: %w", d, err)
	}
	return out, nil
}

// GetLinkedBlob returns a blob only if it is linked into repo; otherwise
// ErrBlobUnknown. Knowing a digest grants nothing: this is the check that keeps
// one repository's content from being read through another.
func GetLinkedBlob(r Reader, repo string, d Digest) (*Blob, error) {
	ok, err := has(r, linkKey(repo, d))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	return GetBlob(r, d)
}

func getManifest(r Reader, repo string, d Digest) (*ManifestInfo, []byte, error) {
	v, err := r.Get(manifestKey(repo, d))
	if errors.Is(err, ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: %s", ErrManifestUnknown, d)
	}
	if err != nil {
		return nil, nil, err
	}
	info, content, err := decodeManifest(v)
	if err != nil {
		return nil, nil, err
	}
	info.Digest = d
	return info, content, nil
}

// GetManifest returns a manifest's record and its exact bytes, or ErrManifestUnknown.
func GetManifest(r Reader, repo string, d Digest) (*ManifestInfo, []byte, error) {
	return getManifest(r, repo, d)
}

func decodeTag(name string, v []byte) (*Tag, error) {
	t := &Tag{Name: name}
	if err := json.Unmarshal(v, t); err != nil {
		return nil, fmt.Errorf("meta: corrupt tag %s: %w", name, err)
	}
	return t, nil
}

// GetTag returns a tag, or ErrManifestUnknown.
func GetTag(r Reader, repo, tag string) (*Tag, error) {
	v, err := r.Get(tagKey(repo, tag))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: tag %s", ErrManifestUnknown, tag)
	}
	if err != nil {
		return nil, err
	}
	return decodeTag(tag, v)
}

// ListTags returns up to n tags of repo in lexical order after last (n <= 0: all),
// and whether more follow. ErrNameUnknown if the repository does not exist.
func ListTags(r Reader, repo, last string, n int) ([]string, bool, error) {
	if _, err := GetRepository(r, repo); err != nil {
		return nil, false, err
	}
	prefix := tagPrefix(repo)
	var start []byte
	if last != "" {
		start = append(tagKey(repo, last), 0) // first key after last
	}
	return listNames(r, prefix, start, n)
}

// ListRepositories returns up to n repository names in lexical order after last
// (n <= 0: all), and whether more follow.
func ListRepositories(r Reader, last string, n int) ([]string, bool, error) {
	var start []byte
	if last != "" {
		start = append(repoKey(last), 0)
	}
	return listNames(r, []byte("r/"), start, n)
}

func listNames(r Reader, prefix, start []byte, n int) ([]string, bool, error) {
	var out []string
	more := false
	err := scanPrefix(r, prefix, start, func(k, _ []byte) error {
		if n > 0 && len(out) == n {
			more = true
			return ErrStopScan
		}
		out = append(out, string(k[len(prefix):]))
		return nil
	})
	return out, more, err
}

// ListReferrers returns the manifests in repo whose subject is subject, with
// artifactType equal to artifactType when that is not empty.
func ListReferrers(r Reader, repo string, subject Digest, artifactType string) ([]Referrer, error) {
	out := []Referrer{}
	err := scanPrefix(r, referrerPrefix(repo, subject), nil, func(_, v []byte) error {
		var ref Referrer
		if err := json.Unmarshal(v, &ref); err != nil {
			return fmt.Errorf("meta: corrupt referrer of %s: %w", subject, err)
		}
		if artifactType == "" || ref.ArtifactType == artifactType {
			out = append(out, ref)
		}
		return nil
	})
	return out, err
}

// TagsOf returns the tags that point at manifest d in repo, in lexical order.
func TagsOf(r Reader, repo string, d Digest) ([]string, error) {
	var out []string
	prefix := tagIndexPrefix(repo, d)
	err := scanPrefix(r, prefix, nil, func(k, _ []byte) error {
		out = append(out, strings.Clone(string(k[len(prefix):])))
		return nil
	})
	return out, err
}

// ReposWithBlob returns every repository the blob is linked into, in name order.
func ReposWithBlob(r Reader, d Digest) ([]string, error) {
	return prefixKeys(r, blobRepoPrefix(d))
}

// BlobLocations returns the nodes that hold a verified copy of the blob, in
// node id order.
func BlobLocations(r Reader, d Digest) ([]string, error) {
	return prefixKeys(r, blobNodePrefix(d))
}

// ScanBlobs calls fn for every recorded blob in digest order, starting after
// last (or at the first when last is empty); fn may return ErrStopScan.
func ScanBlobs(r Reader, last Digest, fn func(b *Blob) error) error {
	var start []byte
	if last != "" {
		start = append(blobKey(last), 0)
	}
	return scanPrefix(r, []byte("b/"), start, func(k, v []byte) error {
		b := &Blob{Digest: Digest(k[2:])}
		if err := json.Unmarshal(v, b); err != nil {
			return fmt.Errorf("meta: corrupt blob %s: %w", b.Digest, err)
		}
		return fn(b)
	})
}

// WorkspaceUsage returns, per workspace, the bytes of the distinct blobs linked
// into its repositories (a layer shared by two repositories of a workspace
// counts once).
func WorkspaceUsage(r Reader) (map[string]int64, error) {
	seen := map[string]map[Digest]bool{}
	err := scanPrefix(r, []byte("l/"), nil, func(k, _ []byte) error {
		repo, d, ok := strings.Cut(string(k[2:]), sep)
		if !ok {
			return nil
		}
		ws := WorkspaceOf(repo)
		if seen[ws] == nil {
			seen[ws] = map[Digest]bool{}
		}
		seen[ws][Digest(d)] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(seen))
	for ws, ds := range seen {
		for d := range ds {
			if b, err := GetBlob(r, d); err == nil {
				out[ws] += b.Size
			}
		}
	}
	return out, nil
}

// WorkspaceBytes returns the bytes of the distinct blobs linked into the
// repositories of one workspace.
func WorkspaceBytes(r Reader, ws string) (int64, error) {
	seen := map[Digest]bool{}
	var total int64
	prefix := []byte("l/" + ws + "/")
	err := scanPrefix(r, prefix, nil, func(k, _ []byte) error {
		_, d, ok := strings.Cut(string(k[2:]), sep)
		if !ok || seen[Digest(d)] {
			return nil
		}
		seen[Digest(d)] = true
		if b, err := GetBlob(r, Digest(d)); err == nil {
			total += b.Size
		}
		return nil
	})
	return total, err
}
