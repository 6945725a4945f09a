package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// A node that starts with no Raft state and does not bootstrap is new, or
// rejoins after losing its disk (a wiped data directory, a replaced
// volume). Raft's safety rests on a voter remembering its log and its votes;
// a node that lost them but kept its server ID may still be a voter in the
// configuration, and hashicorp/raft grants any vote while it has no
// configuration of its own. The chaos harness showed what that costs: with
// one follower lagging, the leader and the other follower commit writes; that
// follower is wiped and the leader dies; the empty follower votes the lagging
// one in, which never had those writes, and the old leader's log is cut back
// to the new leader's when it returns. Acknowledged pushes were gone.
//
// voteGate closes that hole. It wraps the transport of such a node and
// refuses (Granted: false) every vote and pre-vote request until the node has
// caught up with a leader: its last log index has reached the end of the
// leader's log (and its commit index) as the newest term's AppendEntries and
// InstallSnapshot requests showed them. It then holds every entry it can have
// acknowledged before it lost its disk, so the leader's memory of those
// acknowledgements is true again, and it votes as Raft expects. The gate only
// ever opens; a restart with state does not gate.
//
// With the gate, one lost disk plus any number of crashes that recover (the
// node comes back with its data) cannot lose a committed entry: a majority
// that elects a leader needs at least one voter that has every committed
// entry, as Raft assumes.
type voteGate struct {
	raft.Transport
	id       raft.ServerID
	consumer chan raft.RPC
	done     chan struct{}

	lastIndex func() uint64 // the node's last log index; set before raft runs
	open      atomic.Bool
	refused   atomic.Uint64 // vote requests refused while closed

	mu     sync.Mutex // guards term and target
	term   uint64     // the newest term a leader's request came with
	target uint64     // in that term, the highest last index or commit index a leader sent

	closeOnce sync.Once
	onOpen    func() // called once when the gate opens (nil: nothing)
}

func newVoteGate(inner raft.Transport, id raft.ServerID) *voteGate {
	g := &voteGate{Transport: inner, id: id, consumer: make(chan raft.RPC), done: make(chan struct{})}
	go g.run()
	return g
}

// Consumer is the filtered RPC stream raft reads.
func (g *voteGate) Consumer() <-chan raft.RPC { return g.consumer }

// SetHeartbeatHandler passes heartbeats through the gate's observer, which
// learns the leader's commit index from them too.
func (g *voteGate) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.Transport.SetHeartbeatHandler(nil)
		return
	}
	g.Transport.SetHeartbeatHandler(func(rpc raft.RPC) {
		g.observe(rpc)
		cb(rpc)
	})
}

// Close stops the gate and closes the inner transport.
func (g *voteGate) Close() error {
	g.closeOnce.Do(func() { close(g.done) })
	if c, ok := g.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// RequestPreVote sends a pre-vote when the inner transport can.
func (g *voteGate) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	pv, ok := g.Transport.(raft.WithPreVote)
	if !ok {
		return raft.ErrUnsupportedProtocol
	}
	return pv.RequestPreVote(id, target, args, resp)
}

// Open reports whether the node may vote.
func (g *voteGate) Open() bool {
	if g.open.Load() {
		return true
	}
	g.mu.Lock()
	target := g.target
	g.mu.Unlock()
	if target == 0 || g.lastIndex == nil || g.lastIndex() < target {
		return false
	}
	if g.open.CompareAndSwap(false, true) && g.onOpen != nil {
		g.onOpen()
	}
	return true
}

// observe learns how far the leader's log goes from its requests. A request
// of an older term (a deposed leader's) is ignored: its log may hold entries
// no leader will ever commit.
func (g *voteGate) observe(rpc raft.RPC) {
	var term, idx uint64
	switch req := rpc.Command.(type) {
	case *raft.AppendEntriesRequest:
		term, idx = req.Term, max(req.LeaderCommitIndex, req.PrevLogEntry+uint64(len(req.Entries)))
	case *raft.InstallSnapshotRequest:
		term, idx = req.Term, req.LastLogIndex
	default:
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case term > g.term:
		g.term, g.target = term, idx
	case term == g.term:
		g.target = max(g.target, idx)
	}
}

func (g *voteGate) run() {
	in := g.Transport.Consumer()
	for {
		var rpc raft.RPC
		select {
		case <-g.done:
			return
		case rpc = <-in:
		}
		g.observe(rpc)
		if !g.Open() {
			switch req := rpc.Command.(type) {
			case *raft.RequestVoteRequest:
				g.refused.Add(1)
				rpc.Respond(&raft.RequestVoteResponse{RPCHeader: g.header(), Term: req.Term, Granted: false}, nil)
				continue
			case *raft.RequestPreVoteRequest:
				g.refused.Add(1)
				rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: g.header(), Term: req.Term, Granted: false}, nil)
				continue
			}
		}
		select {
		case g.consumer <- rpc:
		case <-g.done:
			return
		}
	}
}

func (g *voteGate) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(g.id), Addr: g.Transport.EncodePeer(g.id, g.Transport.LocalAddr())}
}
