package chaos

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"time"

	"github.com/berth-registry/berth/chaos/faultproxy"
	"github.com/berth-registry/berth/chaos/netns"
)

// network is how the nodes reach one another and how the nemesis degrades
// it. Faults act between nodes only: the clients (this process) keep
// reaching every node, as clients next to each node would in production, so
// an isolated leader still gets writes. Node i is c.nodes[i].
type network interface {
	kind() string
	// addrs are what node i listens on and advertises.
	addrs(i int) (listen, advertise nodeAddrs, err error)
	// command runs the node's process.
	command(i int, name string, args ...string) *exec.Cmd
	// cut stops traffic from node `from` to node `to` (only that direction
	// where the network allows; see the implementations). hard: silently
	// (the sender waits for its timeouts); else refused at once.
	cut(from, to int, hard bool) error
	// loss loses a fraction p of node i's traffic with the other nodes.
	loss(i int, p float64) (string, error)
	// latency delays node i's traffic with the other nodes by d.
	latency(i int, d time.Duration) (string, error)
	heal() error
	close() error
}

type nodeAddrs struct{ api, raft, gossip string }

// newNetwork picks network namespaces when they work here (root, ip,
// iptables) unless forceProxy is set, else per-link TCP proxies.
func newNetwork(c *cluster, size int, prefix string, forceProxy bool) (network, error) {
	if !forceProxy {
		if err := netns.Available(); err == nil {
			nn, err := netns.New(prefix, size)
			if err != nil {
				return nil, fmt.Errorf("chaos: network namespaces: %w", err)
			}
			return &nsNet{n: nn}, nil
		}
	}
	return newProxyNet(c, size)
}

// ---- network namespaces ----

// nsNet runs each node in its own network namespace on a bridge; faults are
// iptables rules and tc qdiscs inside the namespaces (chaos/netns). Gossip
// (UDP) is cut with everything else.
type nsNet struct{ n *netns.Net }

func (m *nsNet) kind() string { return "netns" }

func (m *nsNet) addrs(i int) (nodeAddrs, nodeAddrs, error) {
	ip := m.n.IP(i)
	a := nodeAddrs{api: net.JoinHostPort(ip, "5000"), raft: net.JoinHostPort(ip, "7000"), gossip: net.JoinHostPort(ip, "7946")}
	return a, a, nil
}

func (m *nsNet) command(i int, name string, args ...string) *exec.Cmd {
	return m.n.Command(i, name, args...)
}

func (m *nsNet) cut(from, to int, hard bool) error {
	if hard {
		return m.n.Cut(from, to)
	}
	return m.n.Reject(from, to)
}

func (m *nsNet) loss(i int, p float64) (string, error) {
	return fmt.Sprintf("iptables: %.0f%% of packets to and from the other nodes dropped", p*100), m.n.Loss(i, p)
}

// latency uses netem where the kernel has it; otherwise a slow link (tbf
// rate limit), whose queue delays bulk traffic instead of every packet.
func (m *nsNet) latency(i int, d time.Duration) (string, error) {
	err := m.n.Latency(i, d)
	if err == nil {
		return fmt.Sprintf("netem delay %s", d), nil
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		return "", err
	}
	const kbit = 4000
	return fmt.Sprintf("no sch_netem in this kernel: tbf rate limit %d kbit instead", kbit), m.n.Slow(i, kbit)
}

func (m *nsNet) heal() error  { return m.n.Heal() }
func (m *nsNet) close() error { return m.n.Close() }

// ---- per-link proxies ----

// proxyNet puts a faultproxy in front of every node's Raft and API port; the
// nodes advertise the proxies, so node-to-node traffic passes them, and each
// proxy tells the sending node by the process that owns the socket. Gossip
// (UDP) is not proxied. A "one-way" cut here is one-way by who dials: the
// connections `from` opens to `to` are cut, those `to` opens to `from` pass
// both ways (a TCP proxy cannot lose one direction of a connection).
type proxyNet struct {
	c     *cluster
	links [][2]*faultproxy.Proxy // per node: api, raft
	lst   []nodeAddrs
}

func newProxyNet(c *cluster, size int) (*proxyNet, error) {
	m := &proxyNet{c: c}
	for range size {
		var a nodeAddrs
		var err error
		if a.api, err = freeAddr(false); err != nil {
			return nil, err
		}
		if a.raft, err = freeAddr(false); err != nil {
			return nil, err
		}
		if a.gossip, err = freeAddr(true); err != nil {
			return nil, err
		}
		api, err := faultproxy.New(faultproxy.Config{Target: a.api, Source: c.source})
		if err != nil {
			return nil, err
		}
		raft, err := faultproxy.New(faultproxy.Config{Target: a.raft, Source: c.source})
		if err != nil {
			api.Close()
			return nil, err
		}
		m.lst = append(m.lst, a)
		m.links = append(m.links, [2]*faultproxy.Proxy{api, raft})
	}
	return m, nil
}

func (m *proxyNet) kind() string { return "proxy" }

func (m *proxyNet) addrs(i int) (nodeAddrs, nodeAddrs, error) {
	adv := m.lst[i]
	adv.api, adv.raft = m.links[i][0].Addr(), m.links[i][1].Addr()
	return m.lst[i], adv, nil
}

func (m *proxyNet) command(_ int, name string, args ...string) *exec.Cmd {
	return exec.Command(name, args...)
}

func (m *proxyNet) cut(from, to int, hard bool) error {
	mode := faultproxy.Drop
	if hard {
		mode = faultproxy.Blackhole
	}
	src := m.c.nodes[from].id
	for _, p := range m.links[to] {
		p.SetSourceMode(src, mode)
	}
	return nil
}

// peersOf calls f with every other node's id and node i's proxies, and with
// i's id and every other node's proxies: both directions of i's links.
func (m *proxyNet) peersOf(i int, f func(src string, p *faultproxy.Proxy)) {
	for j := range m.links {
		if j == i {
			continue
		}
		for _, p := range m.links[i] {
			f(m.c.nodes[j].id, p)
		}
		for _, p := range m.links[j] {
			f(m.c.nodes[i].id, p)
		}
	}
}

func (m *proxyNet) loss(i int, p float64) (string, error) {
	m.peersOf(i, func(src string, px *faultproxy.Proxy) { px.SetSourceLoss(src, p) })
	return "faultproxy: " + strconv.FormatFloat(p*100, 'f', 0, 64) + "% of chunks stall a retransmission timeout, some connections reset", nil
}

func (m *proxyNet) latency(i int, d time.Duration) (string, error) {
	m.peersOf(i, func(src string, px *faultproxy.Proxy) { px.SetSourceLatency(src, d, d/10) })
	return fmt.Sprintf("faultproxy: %s one-way delay", d), nil
}

func (m *proxyNet) heal() error {
	for _, l := range m.links {
		for _, p := range l {
			p.SetMode(faultproxy.Pass)
			p.ClearSourceModes()
			p.ClearSourceFaults()
		}
	}
	return nil
}

func (m *proxyNet) close() error {
	for _, l := range m.links {
		for _, p := range l {
			_ = p.Close()
		}
	}
	return nil
}

// isolate cuts node i from every other node, both ways.
func isolate(nw network, size, i int, hard bool) error {
	for j := range size {
		if j != i {
			if err := nw.cut(i, j, hard); err != nil {
				return err
			}
			if err := nw.cut(j, i, hard); err != nil {
				return err
			}
		}
	}
	return nil
}

// partition cuts every link between nodes of different groups, both ways.
// Nodes in no group see everyone (a bridge).
func partition(nw network, groups [][]int, hard bool) error {
	group := map[int]int{}
	for g, ns := range groups {
		for _, i := range ns {
			group[i] = g
		}
	}
	for a, ga := range group {
		for b, gb := range group {
			if ga != gb {
				if err := nw.cut(a, b, hard); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
