//go:build !chaos

package node

import (
	"net/http"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-registry/berth/blobstore"
)

// The production build has no fault injection (faults_chaos.go has it): no
// route, the plain clock, the OS filesystem for Pebble, no blob store hook.

const faultsEnabled = false

type faultInjector struct{}

func newFaultInjector(prometheus.Registerer) (*faultInjector, error) { return nil, nil }

func (*faultInjector) clock(base func() time.Time) func() time.Time { return base }

func (*faultInjector) blobFaults() func(blobstore.FaultOp, string) error { return nil }

func (*faultInjector) pebbleFS() vfs.FS { return nil } // Pebble's default: vfs.Default

// serveFaults is never reached: internal.go routes to it only when
// faultsEnabled.
func (n *Node) serveFaults(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "no such internal endpoint", http.StatusNotFound)
}
