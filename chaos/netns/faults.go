package netns

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// rules maps a node to the rule specs (the arguments after "-A BERTH") to add
// in its namespace.
type rules map[int][]string

func (r rules) add(node int, spec string) { r[node] = append(r[node], spec) }

// drop: on node to, drop every packet from node from.
func (nt *Net) drop(r rules, from, to int) {
	r.add(to, "-s "+nt.IP(from)+"/32 -j DROP")
}

func (nt *Net) checkOpen() error {
	if nt.closed {
		return errors.New("netns: Net is closed")
	}
	return nil
}

func (nt *Net) checkNode(i int) error {
	if i < 0 || i >= nt.n {
		return fmt.Errorf("netns: node %d out of range [0,%d)", i, nt.n)
	}
	return nil
}

// usable checks that the Net is open and the nodes exist.
func (nt *Net) usable(nodes ...int) error {
	if err := nt.checkOpen(); err != nil {
		return err
	}
	for _, i := range nodes {
		if err := nt.checkNode(i); err != nil {
			return err
		}
	}
	return nil
}

// checkPair is usable for a pair of distinct nodes.
func (nt *Net) checkPair(from, to int) error {
	if err := nt.usable(from, to); err != nil {
		return err
	}
	if from == to {
		return fmt.Errorf("netns: node %d to itself", from)
	}
	return nil
}

// apply appends the rules not yet in place to each node's BERTH chain, one
// iptables-restore per namespace.
func (nt *Net) apply(r rules) error {
	for _, node := range sortedKeys(r) {
		ns := nt.Namespace(node)
		var b strings.Builder
		var fresh []string
		b.WriteString("*filter\n")
		for _, spec := range r[node] {
			key := ns + "\x00" + spec
			if nt.applied[key] {
				continue
			}
			nt.applied[key] = true // dedupes within r too; undone on error
			fresh = append(fresh, key)
			b.WriteString("-A " + Chain + " " + spec + "\n")
		}
		if len(fresh) == 0 {
			continue
		}
		b.WriteString("COMMIT\n")
		if _, err := run(b.String(), "ip", "netns", "exec", ns, "iptables-restore", "-w", "--noflush"); err != nil {
			for _, key := range fresh {
				delete(nt.applied, key)
			}
			return err
		}
	}
	return nil
}

// Cut drops (blackholes) every packet node from sends to node to; the sender
// sees no error, only silence. It is one-way, as a real one-way link failure:
// since node to's packets still reach node from but nothing comes back, TCP
// connections between the two break in both directions (a connect from to
// to from times out too, its SYN-ACK being lost), while one-way UDP from to
// to from still arrives. The drop happens on node to's INPUT.
func (nt *Net) Cut(from, to int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.checkPair(from, to); err != nil {
		return err
	}
	r := rules{}
	nt.drop(r, from, to)
	return nt.apply(r)
}

// Reject is Cut with a fast failure: packets from node from to node to are
// refused by node to, TCP with a reset and everything else with an ICMP port
// unreachable, so from's connects and sends fail with "connection refused"
// at once. The refusal itself (to → from) passes.
func (nt *Net) Reject(from, to int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.checkPair(from, to); err != nil {
		return err
	}
	src := "-s " + nt.IP(from) + "/32 "
	r := rules{}
	r.add(to, src+"-p tcp -j REJECT --reject-with tcp-reset")
	r.add(to, src+"-j REJECT --reject-with icmp-port-unreachable")
	return nt.apply(r)
}

// Partition cuts, in both directions, every pair of nodes that lie in
// different groups. Nodes listed in no group together form one more group:
// Partition([]int{0}) separates node 0 from all the others, which still reach
// each other, and Partition([]int{0, 1}, []int{2}) on 5 nodes gives {0,1},
// {2} and {3,4}. A node may appear in one group only. Groups keep reaching
// the host. With no groups, or one holding every node, it cuts nothing.
func (nt *Net) Partition(groups ...[]int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.checkOpen(); err != nil {
		return err
	}
	group := make([]int, nt.n) // node -> group number; len(groups) for the unlisted
	for i := range group {
		group[i] = len(groups)
	}
	seen := make([]bool, nt.n)
	for g, nodes := range groups {
		for _, i := range nodes {
			if err := nt.checkNode(i); err != nil {
				return err
			}
			if seen[i] {
				return fmt.Errorf("netns: partition: node %d is in more than one group", i)
			}
			seen[i] = true
			group[i] = g
		}
	}
	r := rules{}
	for a := 0; a < nt.n; a++ {
		for b := 0; b < nt.n; b++ {
			if group[a] != group[b] {
				nt.drop(r, a, b)
			}
		}
	}
	return nt.apply(r)
}

// Isolate cuts node i from every other node in both directions (as
// Partition([]int{i})); it still reaches the host.
func (nt *Net) Isolate(i int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.usable(i); err != nil {
		return err
	}
	r := rules{}
	for j := 0; j < nt.n; j++ {
		if j != i {
			nt.drop(r, i, j)
			nt.drop(r, j, i)
		}
	}
	return nt.apply(r)
}

// Loss drops each packet node i exchanges with another node, in either
// direction, independently with probability p (0 <= p <= 1; iptables
// statistic match, on the receiver's INPUT). Loss(i, 0) adds nothing and
// Loss(i, 1) drops everything. Traffic with the host is not affected. Losses
// of two nodes compose: a packet from i to j passes both nodes' rules.
func (nt *Net) Loss(i int, p float64) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.usable(i); err != nil {
		return err
	}
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("netns: loss probability %v: want 0 to 1", p)
	}
	if p == 0 {
		return nil
	}
	match := "-m statistic --mode random --probability " + strconv.FormatFloat(p, 'f', -1, 64) + " "
	if p == 1 {
		match = ""
	}
	r := rules{}
	for j := 0; j < nt.n; j++ {
		if j != i {
			r.add(j, "-s "+nt.IP(i)+"/32 "+match+"-j DROP")
			r.add(i, "-s "+nt.IP(j)+"/32 "+match+"-j DROP")
		}
	}
	return nt.apply(r)
}

// Slow limits node i's bandwidth to kbit kilobits per second in each
// direction with a tbf qdisc on both ends of its veth pair (the namespace end
// shapes what it sends, the host end what it receives). Packets queue for up
// to about one second before being dropped. It affects all of node i's
// traffic, including with the host (clients). It replaces an earlier Slow or
// Latency of node i.
func (nt *Net) Slow(i int, kbit int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.usable(i); err != nil {
		return err
	}
	if kbit <= 0 {
		return fmt.Errorf("netns: rate %d kbit: want > 0", kbit)
	}
	// Burst: 10 ms worth of tokens, but at least a few full-size frames.
	burst := max(kbit*1000/8/100, 8192)
	tbf := []string{"root", "tbf", "rate", strconv.Itoa(kbit) + "kbit",
		"burst", strconv.Itoa(burst), "latency", "1s"}
	return nt.setQdisc(i, tbf)
}

// Latency delays every packet node i sends and every packet it receives by d
// (netem on both ends of its veth pair, so a round trip with any peer grows
// by 2d). Like Slow it affects traffic with the host too and replaces an
// earlier Slow or Latency of node i. If the kernel lacks sch_netem it returns
// an error wrapping errors.ErrUnsupported; that is found out once per Net.
func (nt *Net) Latency(i int, d time.Duration) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.usable(i); err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("netns: latency %v: want > 0", d)
	}
	if nt.netem != nil {
		return nt.netem
	}
	netem := []string{"root", "netem", "delay", strconv.FormatInt(d.Microseconds(), 10) + "us"}
	err := nt.setQdisc(i, netem)
	if err != nil && (strings.Contains(err.Error(), "kind is unknown") || strings.Contains(err.Error(), "Unknown qdisc")) {
		nt.netem = fmt.Errorf("netns: latency needs the kernel's sch_netem: %w (%v)", errors.ErrUnsupported, err)
		return nt.netem
	}
	return err
}

// setQdisc replaces the root qdisc on both ends of node i's veth pair.
func (nt *Net) setQdisc(i int, spec []string) error {
	nt.shaped[i] = true
	args := append([]string{"-n", nt.Namespace(i), "qdisc", "replace", "dev", nsDev}, spec...)
	if _, err := run("", "tc", args...); err != nil {
		return err
	}
	args = append([]string{"qdisc", "replace", "dev", nt.Veth(i)}, spec...)
	_, err := run("", "tc", args...)
	return err
}

// Heal removes every fault: it flushes the BERTH chain of every node and
// deletes the qdiscs Slow and Latency added. It is idempotent; on a closed
// Net it does nothing.
func (nt *Net) Heal() error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.closed {
		return nil
	}
	var errs []error
	for i := 0; i < nt.n; i++ {
		if _, err := run("", "ip", "netns", "exec", nt.Namespace(i), "iptables", "-w", "-F", Chain); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		clear(nt.applied)
	}
	for _, i := range sortedKeys(nt.shaped) {
		err1 := delQdisc("-n", nt.Namespace(i), "qdisc", "del", "dev", nsDev, "root")
		err2 := delQdisc("qdisc", "del", "dev", nt.Veth(i), "root")
		if err1 != nil || err2 != nil {
			errs = append(errs, err1, err2)
		} else {
			delete(nt.shaped, i)
		}
	}
	return errors.Join(errs...)
}

// delQdisc runs tc with args, accepting that there is no root qdisc to delete.
func delQdisc(args ...string) error {
	_, err := run("", "tc", args...)
	if err != nil && strings.Contains(err.Error(), "handle of zero") {
		return nil
	}
	return err
}
