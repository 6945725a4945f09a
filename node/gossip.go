package node

import (
	"context"
	"fmt"
	"time"

	"github.com/berth-registry/berth/cluster"
)

// startGossip starts memberlist once the API listens (gossip carries the API
// address) and joins the seeds, retrying in the background until one answers.
func (n *Node) startGossip(ctx context.Context, boundAPI string) error {
	apiAddr := n.cfg.Advertise
	if apiAddr == "" {
		apiAddr = boundAPI
	}
	g, err := cluster.NewGossip(cluster.GossipConfig{
		NodeID:    n.cfg.NodeID,
		Zone:      n.cfg.Zone,
		BindAddr:  n.cfg.GossipListen,
		Advertise: n.cfg.GossipAdvertise,
		Key:       n.clusterKey,
		APIAddr:   apiAddr,
		RaftAddr:  n.cluster.Addr(),
	}, n.log.With("component", "gossip"), n.reg)
	if err != nil {
		return fmt.Errorf("node: gossip: %w", err)
	}
	n.gossip = g
	if len(n.cfg.Join) == 0 {
		return nil
	}
	if _, err := g.Join(n.cfg.Join); err == nil {
		return nil
	}
	n.bgWG.Add(1)
	go func() {
		defer n.bgWG.Done()
		backoff := 500 * time.Millisecond
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if _, err := g.Join(n.cfg.Join); err == nil {
				n.log.Info("joined the cluster", "seeds", n.cfg.Join)
				return
			} else {
				n.log.Warn("join: no seed answered; retrying", "seeds", n.cfg.Join, "err", err)
			}
			backoff = min(2*backoff, 10*time.Second)
		}
	}()
	return nil
}

// livePeers are the other alive, not draining members with an API address.
func (n *Node) livePeers() []peer {
	if n.gossip == nil {
		return nil
	}
	var out []peer
	for _, m := range n.gossip.Members() {
		if m.ID == n.cfg.NodeID || m.State != cluster.Alive || m.Draining || m.APIAddr == "" {
			continue
		}
		out = append(out, peer{ID: m.ID, Zone: m.Zone, APIAddr: m.APIAddr, RTT: m.RTT})
	}
	return out
}

// peerAPI returns a member's API address.
func (n *Node) peerAPI(id string) (string, bool) {
	if id == n.cfg.NodeID {
		return n.Addr(), true
	}
	if n.gossip == nil {
		return "", false
	}
	m, ok := n.gossip.Member(id)
	if !ok || m.State == cluster.Dead || m.State == cluster.Left {
		return "", false
	}
	return m.APIAddr, m.APIAddr != ""
}
