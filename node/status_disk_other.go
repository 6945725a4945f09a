//go:build !linux

package node

import (
	"errors"

	"github.com/berth-registry/berth/api"
)

// errDiskUsageUnsupported: this platform's file system figures are not read.
var errDiskUsageUnsupported = errors.New("node: disk usage is only read on linux")

// diskUsage is not implemented off Linux: the status shows zeros and the disk
// gauges are not exported (production nodes run on Linux; a laptop build still
// compiles and serves).
func diskUsage(string) (api.DiskUsage, error) {
	return api.DiskUsage{}, errDiskUsageUnsupported
}
