package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Soft delete and the trash.
//
// Deleting a tag, a manifest, a blob link, a repository or a workspace moves its
// records out of the live key spaces into the workspace's trash: one item
// (x/<ws>\x00<id>: what, who, when) and a payload holding every moved record
// under its original key (xp/<ws>\x00<id>\x00<original key>). The live key
// spaces then hold only live things, so every read (GetTag, GetManifest,
// ListTags, ListRepositories, ListReferrers, GetLinkedBlob, the catalog) hides a
// deleted item without knowing about the trash, on every node at once. Bytes
// stay on disk: blob records (b/) are never moved, only garbage collection
// removes them.
//
// Restore moves the payload back. What was pushed since the delete wins: a live
// record is never overwritten by its trashed copy. GC reclaims (drops) items
// older than the deleted-item retention; an item that is kept is a root of the
// GC mark, so everything it needs stays restorable.
//
// Deleting the same name again while it is in the trash merges into the item:
// the payload keeps every record, the newest copy of a key wins, and the item
// says who deleted it last and when (the trash keeps one item per name).

// Trash item kinds.
const (
	TrashTag        = "tag"
	TrashManifest   = "manifest"
	TrashBlob       = "blob"
	TrashRepository = "repository"
	TrashWorkspace  = "workspace"
)

// ErrTrashUnknown is the error for a trash item that does not exist (never
// deleted, restored already, or reclaimed by garbage collection).
var ErrTrashUnknown = errors.New("meta: trash item unknown")

// TrashItem is one deleted thing in a workspace's trash.
type TrashItem struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Workspace  string    `json:"workspace"`
	Project    string    `json:"project,omitempty"`    // workspace items: the project it belonged to
	Repository string    `json:"repository,omitempty"` // every kind but workspace
	Tag        string    `json:"tag,omitempty"`        // tag items
	Digest     Digest    `json:"digest,omitempty"`     // tag (its manifest), manifest and blob items
	Tags       []string  `json:"tags,omitempty"`       // manifest items: the tags that pointed at it
	Size       int64     `json:"size,omitempty"`       // manifest and blob items
	DeletedBy  string    `json:"deletedBy"`
	Deleted    time.Time `json:"deleted"`
}

// Trash item ids name what was deleted; they are unique in a workspace.
func TagItemID(repo, tag string) string { return TrashTag + ":" + repo + ":" + tag }
func ManifestItemID(repo string, d Digest) string {
	return TrashManifest + ":" + repo + "@" + string(d)
}
func BlobItemID(repo string, d Digest) string      { return TrashBlob + ":" + repo + "@" + string(d) }
func RepositoryItemID(repo string) string          { return TrashRepository + ":" + repo }
func WorkspaceItemID(ws string) string             { return TrashWorkspace + ":" + ws }
func trashPrefix(ws string) []byte                 { return []byte("x/" + ws + sep) }
func trashKey(ws, id string) []byte                { return []byte("x/" + ws + sep + id) }
func payloadPrefix(ws, id string) []byte           { return []byte("xp/" + ws + sep + id + sep) }
func payloadKey(ws, id string, orig []byte) []byte { return append(payloadPrefix(ws, id), orig...) }

// Commands of the trash. DeleteTag, DeleteManifest, UnlinkBlob and
// DeleteWorkspace (commands.go, commands_tenancy.go) are soft deletes too.

// DeleteRepository moves a repository with everything in it to the trash.
type DeleteRepository struct {
	Repo string    `json:"repo"`
	By   string    `json:"by,omitempty"`
	Time time.Time `json:"time"`
}

// Restore brings a trash item back. What was pushed since the delete wins.
type Restore struct {
	Workspace string    `json:"workspace"`
	ID        string    `json:"id"`
	By        string    `json:"by,omitempty"`
	Time      time.Time `json:"time"`
}

func (*DeleteRepository) Type() CommandType { return CmdDeleteRepository }
func (*Restore) Type() CommandType          { return CmdRestore }

// kv is one record being moved.
type kv struct{ k, v []byte }

// collect returns every record under prefix. Moves collect first and write
// after: an iterator over a batch must not see its own writes mid-scan.
func collect(r Reader, prefix []byte) ([]kv, error) {
	var out []kv
	err := scanPrefix(r, prefix, nil, func(k, v []byte) error {
		out = append(out, kv{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	return out, err
}

// moveToTrash moves records into the payload of item ws/id. A moved link also
// leaves the blob-to-repository index. While a GC run is active, the move is a
// dirty entry: the item (its id may be a candidate of the run's sweep, a new
// delete merges into it) and what it holds (manifests, links' blobs), which
// must stay restorable.
func moveToTrash(txn Txn, index uint64, ws, id string, recs []kv, also ...ManifestRef) error {
	dirty := DirtyEntry{Items: []TrashRef{{Workspace: ws, ID: id}}, Manifests: also}
	for _, r := range recs {
		if err := txn.Set(payloadKey(ws, id, r.k), r.v); err != nil {
			return err
		}
		if err := txn.Delete(r.k); err != nil {
			return err
		}
		if repo, d, ok := splitRepoKey(r.k, "l/"); ok {
			if err := txn.Delete(blobRepoKey(Digest(d), repo)); err != nil {
				return err
			}
			dirty.Blobs = append(dirty.Blobs, Digest(d))
		}
		if repo, d, ok := splitRepoKey(r.k, "m/"); ok {
			dirty.Manifests = append(dirty.Manifests, ManifestRef{Repo: repo, Digest: Digest(d)})
		}
	}
	return noteDirty(txn, index, &dirty)
}

// splitRepoKey splits "<table><repo>\x00<rest>" into repo and rest.
func splitRepoKey(k []byte, table string) (repo, rest string, ok bool) {
	s, found := strings.CutPrefix(string(k), table)
	if !found {
		return "", "", false
	}
	return strings.Cut(s, sep)
}

func getTrashItem(r Reader, ws, id string) (*TrashItem, error) {
	it := &TrashItem{}
	if err := getJSON(r, trashKey(ws, id), it, ErrTrashUnknown, id); err != nil {
		return nil, err
	}
	return it, nil
}

// putTrashItem writes item, merging with an item of the same id: the tags are
// the union, the rest is the newest delete's.
func putTrashItem(txn Txn, it *TrashItem) error {
	if old, err := getTrashItem(txn, it.Workspace, it.ID); err == nil {
		for _, t := range old.Tags {
			if !containsString(it.Tags, t) {
				it.Tags = append(it.Tags, t)
			}
		}
		sort.Strings(it.Tags)
	} else if !errors.Is(err, ErrTrashUnknown) {
		return err
	}
	return txn.Set(trashKey(it.Workspace, it.ID), encodeJSON(it))
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// dropTrashItem removes an item and its payload (restore, reclaim, replace).
func dropTrashItem(txn Txn, ws, id string) error {
	recs, err := collect(txn, payloadPrefix(ws, id))
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := txn.Delete(r.k); err != nil {
			return err
		}
	}
	return txn.Delete(trashKey(ws, id))
}

// tagRecords returns the tag record and its reverse index entry.
func tagRecords(txn Txn, repo, tag string, d Digest) ([]kv, error) {
	v, err := txn.Get(tagKey(repo, tag))
	if err != nil {
		return nil, err
	}
	return []kv{{tagKey(repo, tag), v}, {tagIndexKey(repo, d, tag), nil}}, nil
}

func applyDeleteTag(txn Txn, index uint64, c *DeleteTag) error {
	t, err := GetTag(txn, c.Repo, c.Tag)
	if err != nil {
		return err
	}
	ws, id := WorkspaceOf(c.Repo), TagItemID(c.Repo, c.Tag)
	recs, err := tagRecords(txn, c.Repo, c.Tag, t.Digest)
	if err != nil {
		return err
	}
	// A tag item holds one version of the tag: the newest delete replaces it.
	if err := dropTrashItem(txn, ws, id); err != nil {
		return err
	}
	if err := moveToTrash(txn, index, ws, id, recs, ManifestRef{Repo: c.Repo, Digest: t.Digest}); err != nil {
		return err
	}
	return putTrashItem(txn, &TrashItem{ID: id, Kind: TrashTag, Workspace: ws, Repository: c.Repo, Tag: c.Tag,
		Digest: t.Digest, DeletedBy: c.By, Deleted: c.Time})
}

func applyDeleteManifest(txn Txn, index uint64, c *DeleteManifest) error {
	info, _, err := getManifest(txn, c.Repo, c.Digest)
	if err != nil {
		return err
	}
	tags, err := TagsOf(txn, c.Repo, c.Digest)
	if err != nil {
		return err
	}
	v, err := txn.Get(manifestKey(c.Repo, c.Digest))
	if err != nil {
		return err
	}
	recs := []kv{{manifestKey(c.Repo, c.Digest), v}}
	for _, tag := range tags {
		tr, err := tagRecords(txn, c.Repo, tag, c.Digest)
		if err != nil {
			return err
		}
		recs = append(recs, tr...)
	}
	if info.Subject != "" {
		if rv, err := txn.Get(referrerKey(c.Repo, info.Subject, c.Digest)); err == nil {
			recs = append(recs, kv{referrerKey(c.Repo, info.Subject, c.Digest), rv})
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	ws, id := WorkspaceOf(c.Repo), ManifestItemID(c.Repo, c.Digest)
	if err := moveToTrash(txn, index, ws, id, recs); err != nil {
		return err
	}
	return putTrashItem(txn, &TrashItem{ID: id, Kind: TrashManifest, Workspace: ws, Repository: c.Repo,
		Digest: c.Digest, Tags: tags, Size: info.Size, DeletedBy: c.By, Deleted: c.Time})
}

func applyUnlinkBlob(txn Txn, index uint64, c *UnlinkBlob) error {
	v, err := txn.Get(linkKey(c.Repo, c.Digest))
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrBlobUnknown, c.Digest)
	}
	if err != nil {
		return err
	}
	var size int64
	if b, err := GetBlob(txn, c.Digest); err == nil {
		size = b.Size
	}
	ws, id := WorkspaceOf(c.Repo), BlobItemID(c.Repo, c.Digest)
	if err := moveToTrash(txn, index, ws, id, []kv{{linkKey(c.Repo, c.Digest), v}}); err != nil {
		return err
	}
	return putTrashItem(txn, &TrashItem{ID: id, Kind: TrashBlob, Workspace: ws, Repository: c.Repo,
		Digest: c.Digest, Size: size, DeletedBy: c.By, Deleted: c.Time})
}

// repoRecords returns every record of a repository: its record, manifests,
// tags, tag index, referrers and links.
func repoRecords(r Reader, repo string) ([]kv, error) {
	v, err := r.Get(repoKey(repo))
	if err != nil {
		return nil, err
	}
	out := []kv{{repoKey(repo), v}}
	for _, table := range []string{"f/", "g/", "l/", "m/", "t/"} {
		recs, err := collect(r, []byte(table+repo+sep))
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func applyDeleteRepository(txn Txn, index uint64, c *DeleteRepository) error {
	if _, err := GetRepository(txn, c.Repo); err != nil {
		return err
	}
	recs, err := repoRecords(txn, c.Repo)
	if err != nil {
		return err
	}
	ws, id := WorkspaceOf(c.Repo), RepositoryItemID(c.Repo)
	if err := moveToTrash(txn, index, ws, id, recs); err != nil {
		return err
	}
	return putTrashItem(txn, &TrashItem{ID: id, Kind: TrashRepository, Workspace: ws, Repository: c.Repo,
		DeletedBy: c.By, Deleted: c.Time})
}

// applyDeleteWorkspace moves a workspace, with every repository in it, to the
// trash. Its own trash items stay where they are (x/<ws>\x00...), so they are
// listed and restorable again once the workspace is restored.
func applyDeleteWorkspace(txn Txn, index uint64, c *DeleteWorkspace) error {
	w, err := GetWorkspace(txn, c.Name)
	if err != nil {
		return err
	}
	wv, err := txn.Get(workspaceKey(c.Name))
	if err != nil {
		return err
	}
	recs := []kv{{workspaceKey(c.Name), wv}, {projectWorkspaceKey(w.Project, c.Name), nil}}
	repos, err := prefixKeys(txn, []byte("r/"+c.Name+"/"))
	if err != nil {
		return err
	}
	for _, rest := range repos {
		rr, err := repoRecords(txn, c.Name+"/"+rest)
		if err != nil {
			return err
		}
		recs = append(recs, rr...)
	}
	id := WorkspaceItemID(c.Name)
	if err := moveToTrash(txn, index, c.Name, id, recs); err != nil {
		return err
	}
	return putTrashItem(txn, &TrashItem{ID: id, Kind: TrashWorkspace, Workspace: c.Name, Project: w.Project,
		DeletedBy: c.By, Deleted: c.Time})
}

// applyRestore moves an item's payload back into the live key spaces. Live
// records win over their trashed copies; a tag or referrer entry comes back
// only with what it points at; a link only while its blob is recorded.
func applyRestore(txn Txn, index uint64, c *Restore) error {
	it, err := getTrashItem(txn, c.Workspace, c.ID)
	if err != nil {
		return err
	}
	if err := checkRestore(txn, it); err != nil {
		return err
	}
	recs, err := collect(txn, payloadPrefix(it.Workspace, it.ID))
	if err != nil {
		return err
	}
	pp := len(payloadPrefix(it.Workspace, it.ID))
	var dirty DirtyEntry
	// Pass 1: the records things point at; pass 2: the index entries (referrers,
	// tag index) that must agree with pass 1's outcome.
	var later []kv
	for _, r := range recs {
		orig := r.k[pp:]
		switch {
		case bytes.HasPrefix(orig, []byte("f/")), bytes.HasPrefix(orig, []byte("g/")):
			later = append(later, kv{orig, r.v})
			continue
		case bytes.HasPrefix(orig, []byte("l/")):
			repo, d, _ := splitRepoKey(orig, "l/")
			if ok, err := has(txn, blobKey(Digest(d))); err != nil || !ok {
				if err != nil {
					return err
				}
				continue // reclaimed by GC: the link would point at nothing
			}
			if err := txn.Set(blobRepoKey(Digest(d), repo), nil); err != nil {
				return err
			}
			dirty.Blobs = append(dirty.Blobs, Digest(d))
		case bytes.HasPrefix(orig, []byte("m/")):
			repo, d, _ := splitRepoKey(orig, "m/")
			dirty.Manifests = append(dirty.Manifests, ManifestRef{Repo: repo, Digest: Digest(d)})
		case bytes.HasPrefix(orig, []byte("t/")):
			var t Tag
			if err := json.Unmarshal(r.v, &t); err == nil {
				repo, _, _ := splitRepoKey(orig, "t/")
				dirty.Manifests = append(dirty.Manifests, ManifestRef{Repo: repo, Digest: t.Digest})
			}
		}
		if err := setIfAbsent(txn, orig, r.v); err != nil {
			return err
		}
	}
	for _, r := range later {
		ok, err := indexEntryHolds(txn, r.k)
		if err != nil {
			return err
		}
		if ok {
			if err := txn.Set(r.k, r.v); err != nil {
				return err
			}
		}
	}
	if it.Kind == TrashBlob {
		dirty.Blobs = append(dirty.Blobs, it.Digest)
	}
	dirty.Items = append(dirty.Items, TrashRef{Workspace: it.Workspace, ID: it.ID})
	if err := dropTrashItem(txn, it.Workspace, it.ID); err != nil {
		return err
	}
	return noteDirty(txn, index, &dirty)
}

func setIfAbsent(txn Txn, k, v []byte) error {
	ok, err := has(txn, k)
	if err != nil || ok {
		return err
	}
	return txn.Set(k, v)
}

// indexEntryHolds reports whether a referrer or tag index entry agrees with the
// live state: its manifest is live, or its tag points at its digest.
func indexEntryHolds(txn Txn, k []byte) (bool, error) {
	if repo, rest, ok := splitRepoKey(k, "f/"); ok {
		_, d, _ := strings.Cut(rest, sep)
		return has(txn, manifestKey(repo, Digest(d)))
	}
	repo, rest, _ := splitRepoKey(k, "g/")
	d, tag, _ := strings.Cut(rest, sep)
	t, err := GetTag(txn, repo, tag)
	if errors.Is(err, ErrManifestUnknown) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return t.Digest == Digest(d), nil
}

// checkRestore refuses a restore whose container is gone: a tag needs its
// manifest, anything in a repository needs the repository, a repository its
// workspace, a workspace its project. Restore the container first.
func checkRestore(txn Txn, it *TrashItem) error {
	needRepo := func() error {
		if _, err := GetRepository(txn, it.Repository); err != nil {
			return fmt.Errorf("%w: repository %s is deleted; restore it first", ErrConflict, it.Repository)
		}
		return nil
	}
	switch it.Kind {
	case TrashTag:
		if err := needRepo(); err != nil {
			return err
		}
		if ok, err := has(txn, manifestKey(it.Repository, it.Digest)); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%w: manifest %s of tag %s is deleted; restore it first", ErrConflict, it.Digest, it.Tag)
			}
			return err
		}
		if t, err := GetTag(txn, it.Repository, it.Tag); err == nil && t.Digest != it.Digest {
			return fmt.Errorf("%w: tag %s was pushed again since; delete it first", ErrConflict, it.Tag)
		}
	case TrashManifest:
		return needRepo()
	case TrashBlob:
		if err := needRepo(); err != nil {
			return err
		}
		if ok, err := has(txn, blobKey(it.Digest)); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%w: blob %s was reclaimed by garbage collection", ErrConflict, it.Digest)
			}
			return err
		}
	case TrashRepository:
		if _, err := GetWorkspace(txn, it.Workspace); err != nil {
			return fmt.Errorf("%w: workspace %s is deleted; restore it first", ErrConflict, it.Workspace)
		}
	case TrashWorkspace:
		if _, err := GetProject(txn, it.Project); err != nil {
			return fmt.Errorf("%w: project %s no longer exists", ErrConflict, it.Project)
		}
		if _, err := GetWorkspace(txn, it.Workspace); err == nil {
			return fmt.Errorf("%w: workspace %s exists", ErrConflict, it.Workspace)
		}
	}
	return nil
}

// ListTrash returns the items of a workspace's trash (also of a deleted
// workspace), newest delete first.
func ListTrash(r Reader, ws string) ([]TrashItem, error) {
	out := []TrashItem{}
	err := scanPrefix(r, trashPrefix(ws), nil, func(k, v []byte) error {
		var it TrashItem
		if err := json.Unmarshal(v, &it); err != nil {
			return fmt.Errorf("meta: corrupt trash item %q: %w", k, err)
		}
		out = append(out, it)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Deleted.After(out[j].Deleted) })
	return out, err
}

// GetTrashItem returns one item of a workspace's trash, or ErrTrashUnknown.
func GetTrashItem(r Reader, ws, id string) (*TrashItem, error) { return getTrashItem(r, ws, id) }

// DeletedWorkspace returns a workspace that is in the trash (its record as it
// was when deleted), or ErrWorkspaceUnknown. Authorization of its trash uses it.
func DeletedWorkspace(r Reader, ws string) (*Workspace, error) {
	w := &Workspace{}
	key := payloadKey(ws, WorkspaceItemID(ws), workspaceKey(ws))
	if err := getJSON(r, key, w, ErrWorkspaceUnknown, ws); err != nil {
		return nil, err
	}
	w.Name = ws
	return w, nil
}

// workspaceInTrash reports whether a workspace of that name is in the trash.
func workspaceInTrash(r Reader, ws string) (bool, error) {
	return has(r, trashKey(ws, WorkspaceItemID(ws)))
}
