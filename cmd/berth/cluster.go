package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
)

const clusterUsage = `usage: berth cluster keygen FILE
       berth cluster remove NODE_ID [--server URL] [--json]

  keygen FILE     write a new random 32-byte cluster key (64 hex digits, mode 0600) to FILE;
                  give every node of a cluster the same file with --cluster-key-file
  remove NODE_ID  remove a node that is down for good from Raft and drop it from every
                  blob's locations, so its copies are recreated on the other nodes (cloud
                  admins; ask any other node with --server). A node that still runs is added
                  back by the leader: stop it first. berth status shows the nodes.
`

// clusterCmd runs the `berth cluster` subcommands.
func clusterCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, clusterUsage)
		return 2
	}
	switch args[0] {
	case "keygen":
		if len(args) != 2 {
			fmt.Fprint(stderr, clusterUsage)
			return 2
		}
		var key [32]byte
		if _, err := rand.Read(key[:]); err != nil {
			fmt.Fprintln(stderr, "berth cluster keygen:", err)
			return 1
		}
		f, err := os.OpenFile(args[1], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			fmt.Fprintln(stderr, "berth cluster keygen:", err)
			return 1
		}
		_, err = fmt.Fprintln(f, hex.EncodeToString(key[:]))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintln(stderr, "berth cluster keygen:", err)
			return 1
		}
		fmt.Fprintln(stdout, "wrote a new cluster key to", args[1])
		return 0
	case "remove":
		env := &adminEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr}
		return runCommand("cluster remove", env, func() error { return cmdClusterRemove(args[1:], env) })
	case "-h", "--help", "help":
		fmt.Fprint(stdout, clusterUsage)
		return 0
	}
	fmt.Fprintf(stderr, "berth cluster: unknown command %q\n%s", args[0], clusterUsage)
	return 2
}

// cmdClusterRemove asks a node to remove another from the cluster.
func cmdClusterRemove(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("cluster remove", "cluster remove NODE_ID [--server URL] [--json]\n\n"+
		"Removes a node that is down for good from Raft and drops it from every blob's locations,\n"+
		"so the replicator recreates its copies on the remaining nodes (cloud admins only).\n"+
		"Ask another node than the one removed. A node that still runs is added back by the leader:\n"+
		"stop it first.", env, &c)
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var out struct {
		Node             string `json:"node"`
		RemovedFromRaft  bool   `json:"removedFromRaft"`
		LocationsDropped int    `json:"locationsDropped"`
		Warning          string `json:"warning"`
	}
	raw, err := cl.do(http.MethodDelete, "/api/v1/cluster/nodes/"+esc(pos[0]), nil, &out)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	if out.RemovedFromRaft {
		fmt.Fprintf(env.stdout, "Removed %s from the Raft configuration\n", out.Node)
	} else {
		fmt.Fprintf(env.stdout, "%s was no longer in the Raft configuration\n", out.Node)
	}
	fmt.Fprintf(env.stdout, "Dropped it from the locations of %d blobs; the replicator recreates their copies on the other nodes\n", out.LocationsDropped)
	if out.Warning != "" {
		fmt.Fprintln(env.stderr, "warning:", out.Warning)
	}
	return nil
}
