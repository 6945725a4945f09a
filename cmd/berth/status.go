package main

// berth status: the cluster as GET /api/v1/cluster shows it, one line per
// node. It exits 1 when the cluster has no leader (after printing what it
// sees), so scripts and probes can use it.

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
)

// clusterStatus is the part of GET /api/v1/cluster that the table shows.
type clusterStatus struct {
	Node   string `json:"node"`
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	Nodes  []struct {
		ID                 string  `json:"id"`
		Zone               string  `json:"zone"`
		State              string  `json:"state"`
		Draining           bool    `json:"draining"`
		Suffrage           string  `json:"suffrage"`
		IsLeader           bool    `json:"isLeader"`
		RaftState          string  `json:"raftState"`
		AppliedIndex       *uint64 `json:"appliedIndex"` // nil: the node did not answer
		ReplicationBacklog int64   `json:"replicationBacklog"`
		Disk               struct {
			CapacityBytes uint64 `json:"capacityBytes"`
			UsedBytes     uint64 `json:"usedBytes"`
			FreeBytes     uint64 `json:"freeBytes"`
		} `json:"disk"`
		Error string `json:"error"`
	} `json:"nodes"`
}

// errNoLeader: berth status found no Raft leader (exit 1).
var errNoLeader = errors.New("the cluster has no leader: writes fail until one is elected (is a quorum of voters up?)")

func cmdStatus(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("status", "status [--server URL] [--json]\n\n"+
		"Shows every node of the cluster: zone, Raft role, gossip state, applied index and its lag\n"+
		"behind the leader's, disk use of the data directory, replication backlog (cloud admins only).\n"+
		"Exits 1 when the cluster has no leader.", env, &c)
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var st clusterStatus
	raw, err := cl.do(http.MethodGet, "/api/v1/cluster", nil, &st)
	if err != nil {
		return err
	}
	if c.json {
		if err := printJSON(env.stdout, raw); err != nil {
			return err
		}
	} else if err := printStatus(env, &st); err != nil {
		return err
	}
	if st.Leader == "" {
		return errNoLeader
	}
	return nil
}

func printStatus(env *adminEnv, st *clusterStatus) error {
	var leaderApplied *uint64
	for _, n := range st.Nodes {
		if n.ID == st.Leader {
			leaderApplied = n.AppliedIndex
		}
	}
	var rows [][]string
	var problems []string
	for _, n := range st.Nodes {
		role := n.Suffrage
		switch {
		case n.IsLeader:
			role = "leader"
		case n.Suffrage == "voter":
			role = "follower"
		case n.Suffrage == "":
			role = "joining"
		}
		state := n.State
		if n.Draining {
			state += ",draining"
		}
		applied, lag, disk, backlog := "-", "-", "-", "-"
		if n.AppliedIndex != nil {
			applied = strconv.FormatUint(*n.AppliedIndex, 10)
			backlog = strconv.FormatInt(n.ReplicationBacklog, 10)
			if leaderApplied != nil {
				lag = strconv.FormatInt(int64(*leaderApplied)-int64(*n.AppliedIndex), 10)
			}
			// As df's Use%: used against what the node may use (root's
			// reserve excluded), so 100% means the node can write no more.
			if room := n.Disk.UsedBytes + n.Disk.FreeBytes; room > 0 {
				disk = fmt.Sprintf("%.0f%%", math.Ceil(100*float64(n.Disk.UsedBytes)/float64(room)))
			}
		}
		if n.Error != "" {
			problems = append(problems, n.ID+": "+n.Error)
		}
		rows = append(rows, []string{n.ID, orDash(n.Zone), role, state, applied, lag, disk, backlog})
	}
	leader := st.Leader
	if leader == "" {
		leader = "none"
	}
	fmt.Fprintf(env.stdout, "Leader: %s  Term: %d  (as seen by %s)\n\n", leader, st.Term, st.Node)
	if err := table(env.stdout, "NODE\tZONE\tROLE\tSTATE\tAPPLIED\tLAG\tDISK USED\tBACKLOG", rows); err != nil {
		return err
	}
	if len(problems) > 0 {
		fmt.Fprintln(env.stdout)
		for _, p := range problems {
			fmt.Fprintln(env.stdout, p)
		}
	}
	return nil
}

// runCommand runs a standalone admin command (status, cluster remove) with the
// exit codes of runAdmin: 0 done, 1 refused or unreachable, 2 usage error.
func runCommand(name string, env *adminEnv, f func() error) int {
	if env.getenv == nil {
		env.getenv = os.Getenv
	}
	err := f()
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFlagParse):
		return 2 // the flag package printed the error and the usage
	case errors.As(err, &ue):
		fmt.Fprintf(env.stderr, "berth %s: %v\n", name, err)
		return 2
	}
	fmt.Fprintf(env.stderr, "berth %s: %v\n", name, err)
	return 1
}
