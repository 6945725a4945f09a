package node

// Fault injection for the chaos harness. It is compiled in only with the build
// tag chaos (faults_chaos.go); the production build has none of it
// (faults_nochaos.go: no route, Pebble on the OS filesystem, no blob store
// hook, the plain clock). In the chaos build the internal API serves
//
//	PUT    /internal/v1/faults   body FaultSet: replaces the fault set
//	GET    /internal/v1/faults   the set and FaultStatus.Injected
//	DELETE /internal/v1/faults   clears every fault and the clock offset
//
// "meta" is Pebble (metadata, the Raft log and stable store; not the Raft
// snapshot files); "blobs" is the blob store. Op "write" covers creating,
// writing and renaming files, "sync" every fsync; the error is returned as
// the operating system would return it (an *fs.PathError).

// FaultSet is the body of PUT /internal/v1/faults.
type FaultSet struct {
	Disk []DiskFault `json:"disk"`
	// ClockOffset is added to the node's clock ("-90s"; empty: none).
	ClockOffset string `json:"clockOffset,omitempty"`
}

// DiskFault fails operations on a store with an error at a probability.
type DiskFault struct {
	Store       string  `json:"store"`       // "blobs", "meta" or "all"
	Op          string  `json:"op"`          // "write", "sync" or "all"
	Error       string  `json:"error"`       // "EIO" or "ENOSPC"
	Probability float64 `json:"probability"` // 0 to 1
}

// FaultStatus answers GET /internal/v1/faults.
type FaultStatus struct {
	FaultSet
	// Injected counts the errors injected since the node started, by store
	// ("blobs", "meta") and op ("write", "sync").
	Injected map[string]map[string]uint64 `json:"injected"`
}
