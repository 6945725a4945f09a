package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	// Seeds: the configured ones and the members this node last saw, so a
	// node that bootstrapped the cluster (no --join) finds the others again
	// after an outage long enough for them to have forgotten it.
	seeds := append([]string(nil), n.cfg.Join...)
	for _, a := range n.rememberedPeers() {
		if a != g.Addr() && !slices.Contains(seeds, a) {
			seeds = append(seeds, a)
		}
	}
	n.bgWG.Add(2)
	go func() {
		defer n.bgWG.Done()
		n.rememberPeers(ctx)
	}()
	go func() {
		defer n.bgWG.Done()
		n.reconnectDead(ctx)
	}()
	if len(seeds) == 0 {
		return nil
	}
	if _, err := g.Join(seeds); err == nil {
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
			if _, err := g.Join(seeds); err == nil {
				n.log.Info("joined the cluster", "seeds", seeds)
				return
			} else if n.aliveMembers() > 1 {
				return // another member found this node meanwhile
			} else {
				n.log.Warn("join: no seed answered; retrying", "seeds", seeds, "err", err)
			}
			backoff = min(2*backoff, 10*time.Second)
		}
	}()
	return nil
}

// reconnectDead joins the members gossip holds dead (failed, not left)
// every few seconds. memberlist stops talking to a dead member after
// GossipToTheDeadTime (30s), so the two sides of a partition that outlasted
// it would each keep the other dead after it healed: followers would not
// know the leader's API address, and Raft would have to carry the cluster
// alone. The chaos harness found this with partitions that cut gossip too.
func (n *Node) reconnectDead(ctx context.Context) {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var addrs []string
		for _, m := range n.gossip.Members() {
			if m.State == cluster.Dead && m.GossipAddr != "" {
				addrs = append(addrs, m.GossipAddr)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		if k, err := n.gossip.Join(addrs); k > 0 {
			n.log.Info("gossip: reached members held dead", "addrs", addrs, "reached", k)
		} else {
			n.log.Debug("gossip: members held dead still unreachable", "addrs", addrs, "err", err)
		}
	}
}

func (n *Node) aliveMembers() int {
	c := 0
	for _, m := range n.gossip.Members() {
		if m.State == cluster.Alive {
			c++
		}
	}
	return c
}

const peersFile = "gossip-peers.json"

// rememberedPeers returns the gossip addresses of the members this node saw
// last time it ran.
func (n *Node) rememberedPeers() []string {
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, peersFile))
	if err != nil {
		return nil
	}
	var addrs []string
	if json.Unmarshal(b, &addrs) != nil {
		return nil
	}
	return addrs
}

// rememberPeers writes the alive members' gossip addresses to the data
// directory whenever membership changes, until ctx ends.
func (n *Node) rememberPeers(ctx context.Context) {
	changes := n.gossip.Changes()
	var last []string
	for {
		var addrs []string
		for _, m := range n.gossip.Members() {
			if m.ID != n.cfg.NodeID && m.State == cluster.Alive && m.GossipAddr != "" {
				addrs = append(addrs, m.GossipAddr)
			}
		}
		if len(addrs) > 0 && !slices.Equal(addrs, last) {
			b, _ := json.Marshal(addrs)
			tmp := filepath.Join(n.cfg.DataDir, peersFile+".tmp")
			if err := os.WriteFile(tmp, b, 0o600); err == nil {
				if err := os.Rename(tmp, filepath.Join(n.cfg.DataDir, peersFile)); err == nil {
					last = addrs
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				return
			}
		case <-time.After(30 * time.Second):
		}
	}
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

// lastAPI returns the API address gossip last knew for id, even if it holds
// the member dead: for the Raft leader, which this node has just heard from,
// gossip's verdict is stale (a healed partition) and the address still good.
func (n *Node) lastAPI(id string) (string, bool) {
	if addr, ok := n.peerAPI(id); ok || n.gossip == nil {
		return addr, ok
	}
	m, ok := n.gossip.Member(id)
	if !ok || m.State == cluster.Left {
		return "", false
	}
	return m.APIAddr, m.APIAddr != ""
}
