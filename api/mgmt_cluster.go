package api

// The cluster routes of the management API: what every node of the cluster is
// doing (GET /api/v1/cluster) and removing a node that is gone for good
// (DELETE /api/v1/cluster/nodes/:node). Both are for cloud admins only: they
// show addresses and capacity of the whole installation and change who votes.
// The figures come from the node through ClusterAdmin; this file only checks
// who asks and turns refusals into answers.

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// ClusterStatus is the answer of GET /api/v1/cluster.
type ClusterStatus struct {
	Node   string `json:"node"`   // the node that answered
	Leader string `json:"leader"` // the Raft leader's id, "" when there is none
	Term   uint64 `json:"term"`   // the Raft term as the answering node knows it
	// Nodes are the servers of the Raft configuration and the members gossip
	// sees alive that are not (yet) in it, sorted by id.
	Nodes []ClusterNode `json:"nodes"`
}

// ClusterNode is one node as the answering node sees it (gossip and Raft
// configuration), with the figures the node itself reported (*NodeLocal,
// absent when it could not be asked; Error says why).
type ClusterNode struct {
	ID         string `json:"id"`
	Zone       string `json:"zone"`
	APIAddr    string `json:"apiAddr,omitempty"`
	RaftAddr   string `json:"raftAddr,omitempty"`
	GossipAddr string `json:"gossipAddr,omitempty"`
	// State is the gossip state: alive, suspect, dead, left; "unknown" for a
	// Raft server gossip has not seen. A single node is always alive.
	State string `json:"state"`
	// RTTMillis is the gossip probe round trip from the answering node (0 for
	// itself or before the first probe).
	RTTMillis float64 `json:"rttMillis"`
	Draining  bool    `json:"draining"`
	// Suffrage is voter or nonvoter; "" for a member that is not in the Raft
	// configuration (joining, or removed and still gossiping).
	Suffrage string `json:"suffrage"`
	IsLeader bool   `json:"isLeader"`
	*NodeLocal
	Error string `json:"error,omitempty"`
}

// NodeLocal are the figures a node reports about itself.
type NodeLocal struct {
	RaftState    string `json:"raftState"` // leader, follower, candidate, shutdown
	Term         uint64 `json:"term"`      // the Raft term as the node knows it
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	// LastContact is when the node last heard from the leader, and
	// LastContactAgeSeconds how long before it answered (measured on the
	// node's own clock, so clock skew does not matter). Both are absent on
	// the leader and on a node that never heard from one.
	LastContact           *time.Time `json:"lastContact,omitempty"`
	LastContactAgeSeconds *float64   `json:"lastContactAgeSeconds,omitempty"`
	Disk                  DiskUsage  `json:"disk"`
	// Blobs and BlobBytes count the blob files on the node's disk (refreshed
	// at most every 30 seconds; BlobsAsOf says when).
	Blobs     int64     `json:"blobs"`
	BlobBytes int64     `json:"blobBytes"`
	BlobsAsOf time.Time `json:"blobsAsOf"`
	// ReplicationBacklog is how many blobs the node should hold but does not
	// yet, as its replicator last counted.
	ReplicationBacklog int64 `json:"replicationBacklog"`
}

// DiskUsage is the file system that holds a node's data directory. All zero
// where the platform cannot tell.
type DiskUsage struct {
	CapacityBytes uint64 `json:"capacityBytes"`
	UsedBytes     uint64 `json:"usedBytes"`
	FreeBytes     uint64 `json:"freeBytes"` // available to the node (without root's reserve)
}

// NodeRemoval is the answer of DELETE /api/v1/cluster/nodes/:node.
type NodeRemoval struct {
	Node string `json:"node"`
	// RemovedFromRaft is false when the node was no longer in the Raft
	// configuration (the leader had already removed it after it left or died):
	// its blob locations are dropped all the same.
	RemovedFromRaft bool `json:"removedFromRaft"`
	// LocationsDropped is how many blobs no longer list the node as a holder.
	LocationsDropped int `json:"locationsDropped"`
	// Warning is set when the node is still alive in gossip: the leader adds
	// it back to Raft as long as it runs. Stop a node before removing it.
	Warning string `json:"warning,omitempty"`
}

// requireCloudAdmin refuses everyone but cloud admins.
func requireCloudAdmin(p *Principal) error {
	if !p.CloudAdmin {
		return mgmtDenied("only cloud admins may see and change the cluster")
	}
	return nil
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request, p *Principal, _ httprouter.Params) error {
	if err := requireCloudAdmin(p); err != nil {
		return err
	}
	if s.clusterAdmin == nil {
		return newError(CodeUnsupported, http.StatusNotImplemented, "this server has no cluster status")
	}
	st, err := s.clusterAdmin.ClusterStatus(r.Context())
	if err != nil {
		return err
	}
	return mgmtReply(w, r, http.StatusOK, st)
}

func (s *Server) deleteClusterNode(w http.ResponseWriter, r *http.Request, p *Principal, ps httprouter.Params) error {
	if err := requireCloudAdmin(p); err != nil {
		return err
	}
	if s.clusterAdmin == nil {
		return newError(CodeUnsupported, http.StatusNotImplemented, "this server cannot remove nodes")
	}
	id := ps.ByName("node")
	if id == "" {
		return mgmtInvalid("a node id is required")
	}
	res, err := s.clusterAdmin.RemoveNode(r.Context(), id)
	if err != nil {
		return clusterError(err)
	}
	return mgmtReply(w, r, http.StatusOK, res)
}

// clusterError turns RemoveNode's refusals into answers; the client's message
// is the text from the sentinel on, without "api: " ("node unknown: n9").
func clusterError(err error) error {
	for _, m := range []struct {
		target error
		code   ErrorCode
		status int
	}{
		{ErrNodeUnknown, CodeNotFound, http.StatusNotFound},
		{ErrNodeRemoveRefused, CodeConflict, http.StatusConflict},
	} {
		if !errors.Is(err, m.target) {
			continue
		}
		msg := err.Error()
		if i := strings.Index(msg, m.target.Error()); i >= 0 {
			msg = strings.TrimPrefix(msg[i:], "api: ")
		}
		return newError(m.code, m.status, "%s", msg).withCause(err)
	}
	return err
}
