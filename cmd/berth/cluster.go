package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

const clusterUsage = `usage: berth cluster keygen FILE

  keygen FILE   write a new random 32-byte cluster key (64 hex digits, mode 0600) to FILE;
                give every node of a cluster the same file with --cluster-key-file
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
	case "-h", "--help", "help":
		fmt.Fprint(stdout, clusterUsage)
		return 0
	}
	fmt.Fprintf(stderr, "berth cluster: unknown command %q\n%s", args[0], clusterUsage)
	return 2
}
