package api

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/meta"
)

// Proposer changes the metadata. Propose returns once the command is committed and
// applied on this node, with the command's domain error (meta.ErrBlobUnknown, ...)
// if it was refused, or ErrUnavailable when no leader could take it.
type Proposer interface {
	Propose(ctx context.Context, c meta.Command) error
}

// ErrUnavailable means the metadata cannot be changed right now (no leader); the
// client gets 503 with Retry-After.
var ErrUnavailable = errors.New("api: metadata unavailable")

// Blobs stores blob bytes. The node adapts blobstore.Store to it.
type Blobs interface {
	Stat(d digest.Digest) (int64, error)
	Open(d digest.Digest) (*os.File, error)
	Put(ctx context.Context, r io.Reader, expected digest.Digest) (int64, error)
	NewUpload(id string, algs ...digest.Algorithm) (Upload, error)
	Upload(id string) (Upload, error)
}

// Upload is one resumable upload session owned by this node.
type Upload interface {
	ID() string
	Size() int64
	Write(ctx context.Context, r io.Reader) (int64, error)
	Commit(ctx context.Context, expected digest.Digest, expectedSize int64) (int64, error)
	Cancel() error
}

// Action is what a request wants to do to a repository.
type Action string

const (
	ActionPull   Action = "pull"
	ActionPush   Action = "push"
	ActionDelete Action = "delete"
)

// Cluster is what the API needs of the other nodes. It is nil for a single node.
type Cluster interface {
	// PeerAPI returns the API address of a live node: an upload session's
	// requests are streamed through to the node that owns it.
	PeerAPI(nodeID string) (string, bool)
	// ReadBarrier makes this node's state at least as new as the leader's at
	// the time of the call. A read that misses calls it before answering
	// "unknown", so a follower never answers 404 from stale state.
	ReadBarrier(ctx context.Context) error
}

// ClusterAdmin is what the cluster routes need of the node. It is set for a
// single node too (whose status lists itself only).
type ClusterAdmin interface {
	// ClusterStatus gathers the status of every node, asking the live peers
	// for their local figures. It returns within a few seconds whatever the
	// peers do: a peer that does not answer is listed with Error set.
	ClusterStatus(ctx context.Context) (*ClusterStatus, error)
	// RemoveNode removes a node from the Raft configuration and drops its
	// blob locations from the metadata, so that the replicator recreates its
	// copies on the remaining nodes. It refuses (ErrNodeRemoveRefused) to
	// remove the node that serves the call or the last voter, and answers
	// ErrNodeUnknown for a node the cluster does not know; ErrUnavailable
	// when no leader could make the change.
	RemoveNode(ctx context.Context, id string) (*NodeRemoval, error)
}

// Refusals of ClusterAdmin.RemoveNode; wrap them with the node id ("%w: n3").
var (
	ErrNodeUnknown       = errors.New("api: node unknown")
	ErrNodeRemoveRefused = errors.New("api: node removal refused")
)
