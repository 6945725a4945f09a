//go:build chaos

package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-registry/berth/blobstore"
)

// The chaos build's fault injection; see faults.go for the endpoint.

// faultsEnabled turns on the /internal/v1/faults route (internal.go).
const faultsEnabled = true

// Stores and ops, as indexes of faultInjector.counts.
const (
	faultBlobs = iota
	faultMeta
)

const (
	faultWrite = iota
	faultSync
)

var (
	faultStoreNames = [...]string{faultBlobs: "blobs", faultMeta: "meta"}
	faultOpNames    = [...]string{faultWrite: "write", faultSync: "sync"}
	faultErrnos     = map[string]syscall.Errno{"EIO": syscall.EIO, "ENOSPC": syscall.ENOSPC}
)

const (
	maxDiskFaults    = 64
	maxClockOffset   = 10 * 365 * 24 * time.Hour
	maxFaultSetBytes = 64 << 10
)

// faultRule is a validated DiskFault.
type faultRule struct {
	stores [2]bool // by faultBlobs, faultMeta
	ops    [2]bool // by faultWrite, faultSync
	errno  syscall.Errno
	p      float64
}

// faultSet is a validated FaultSet; it is replaced whole, never modified.
type faultSet struct {
	spec  FaultSet
	rules []faultRule
}

// faultInjector holds the current fault set and clock offset. Its methods are
// safe for concurrent use; the storage hooks read the set without locking.
type faultInjector struct {
	set    atomic.Pointer[faultSet] // nil: no disk faults
	offset atomic.Int64             // nanoseconds added to the clock
	counts [2][2]atomic.Uint64      // injected errors by store, op
	metric *prometheus.CounterVec
}

func newFaultInjector(reg prometheus.Registerer) (*faultInjector, error) {
	f := &faultInjector{metric: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_chaos_injected_faults_total",
		Help: "Storage errors injected by the chaos build's fault injection, by store and operation.",
	}, []string{"store", "op"})}
	for _, s := range faultStoreNames {
		for _, o := range faultOpNames {
			f.metric.WithLabelValues(s, o)
		}
	}
	if err := reg.Register(f.metric); err != nil {
		return nil, err
	}
	return f, nil
}

// clock returns base shifted by the current offset. time.Time.Add shifts the
// monotonic reading too, so durations measured between two readings of this
// clock see a change of the offset (a real clock step would not); durations
// that matter as such are measured with time.Since, not this clock.
func (f *faultInjector) clock(base func() time.Time) func() time.Time {
	return func() time.Time { return base().Add(time.Duration(f.offset.Load())) }
}

// inject decides whether an operation fails: each matching rule draws in turn,
// and the first that fires gives its error, as the OS would return it.
func (f *faultInjector) inject(store, op int, name, path string) error {
	set := f.set.Load()
	if set == nil {
		return nil
	}
	for i := range set.rules {
		r := &set.rules[i]
		if r.stores[store] && r.ops[op] && rand.Float64() < r.p {
			f.counts[store][op].Add(1)
			f.metric.WithLabelValues(faultStoreNames[store], faultOpNames[op]).Inc()
			return &fs.PathError{Op: name, Path: path, Err: r.errno}
		}
	}
	return nil
}

// blobFaults is the blob store's hook (blobstore.Options.Faults).
func (f *faultInjector) blobFaults() func(blobstore.FaultOp, string) error {
	return func(op blobstore.FaultOp, path string) error {
		kind := faultWrite
		if op == blobstore.FaultSync {
			kind = faultSync
		}
		return f.inject(faultBlobs, kind, op.String(), path)
	}
}

// pebbleFS is Pebble's filesystem: the OS's, with faults.
func (f *faultInjector) pebbleFS() vfs.FS { return &faultFS{FS: vfs.Default, f: f} }

// faultFS injects "write" faults into creating, reusing, renaming and linking
// files and into writes to the files it opened for writing, and "sync" faults
// into their Sync, SyncData and SyncTo (Pebble syncs its WAL with SyncData).
// Reads, removals and locks are left alone.
type faultFS struct {
	vfs.FS
	f *faultInjector
}

func (ffs *faultFS) Unwrap() vfs.FS { return ffs.FS }

func (ffs *faultFS) Create(name string) (vfs.File, error) {
	if err := ffs.f.inject(faultMeta, faultWrite, "open", name); err != nil {
		return nil, err
	}
	file, err := ffs.FS.Create(name)
	return ffs.wrap(file, name, err)
}

func (ffs *faultFS) OpenReadWrite(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := ffs.f.inject(faultMeta, faultWrite, "open", name); err != nil {
		return nil, err
	}
	file, err := ffs.FS.OpenReadWrite(name, opts...)
	return ffs.wrap(file, name, err)
}

func (ffs *faultFS) OpenDir(name string) (vfs.File, error) {
	file, err := ffs.FS.OpenDir(name)
	return ffs.wrap(file, name, err)
}

func (ffs *faultFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	if err := ffs.f.inject(faultMeta, faultWrite, "rename", oldname); err != nil {
		return nil, err
	}
	file, err := ffs.FS.ReuseForWrite(oldname, newname)
	return ffs.wrap(file, newname, err)
}

func (ffs *faultFS) Rename(oldname, newname string) error {
	if err := ffs.f.inject(faultMeta, faultWrite, "rename", oldname); err != nil {
		return err
	}
	return ffs.FS.Rename(oldname, newname)
}

func (ffs *faultFS) Link(oldname, newname string) error {
	if err := ffs.f.inject(faultMeta, faultWrite, "link", oldname); err != nil {
		return err
	}
	return ffs.FS.Link(oldname, newname)
}

func (ffs *faultFS) wrap(file vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, name: name, f: ffs.f}, nil
}

type faultFile struct {
	vfs.File
	name string
	f    *faultInjector
}

func (ff *faultFile) Write(p []byte) (int, error) {
	if err := ff.f.inject(faultMeta, faultWrite, "write", ff.name); err != nil {
		return 0, err
	}
	return ff.File.Write(p)
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := ff.f.inject(faultMeta, faultWrite, "write", ff.name); err != nil {
		return 0, err
	}
	return ff.File.WriteAt(p, off)
}

func (ff *faultFile) Sync() error {
	if err := ff.f.inject(faultMeta, faultSync, "sync", ff.name); err != nil {
		return err
	}
	return ff.File.Sync()
}

func (ff *faultFile) SyncData() error {
	if err := ff.f.inject(faultMeta, faultSync, "sync", ff.name); err != nil {
		return err
	}
	return ff.File.SyncData()
}

func (ff *faultFile) SyncTo(length int64) (bool, error) {
	if err := ff.f.inject(faultMeta, faultSync, "sync", ff.name); err != nil {
		return false, err
	}
	return ff.File.SyncTo(length)
}

// parseFaultSet validates a PUT body.
func parseFaultSet(body []byte) (*faultSet, time.Duration, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var spec FaultSet
	if err := dec.Decode(&spec); err != nil {
		return nil, 0, fmt.Errorf("body: %v", err)
	}
	if dec.More() {
		return nil, 0, errors.New("body: more than one JSON value")
	}
	if len(spec.Disk) > maxDiskFaults {
		return nil, 0, fmt.Errorf("disk: at most %d faults", maxDiskFaults)
	}
	set := &faultSet{spec: spec}
	if set.spec.Disk == nil {
		set.spec.Disk = []DiskFault{}
	}
	for i, d := range spec.Disk {
		var r faultRule
		switch d.Store {
		case "blobs":
			r.stores[faultBlobs] = true
		case "meta":
			r.stores[faultMeta] = true
		case "all":
			r.stores = [2]bool{true, true}
		default:
			return nil, 0, fmt.Errorf("disk[%d].store: %q is not \"blobs\", \"meta\" or \"all\"", i, d.Store)
		}
		switch d.Op {
		case "write":
			r.ops[faultWrite] = true
		case "sync":
			r.ops[faultSync] = true
		case "all":
			r.ops = [2]bool{true, true}
		default:
			return nil, 0, fmt.Errorf("disk[%d].op: %q is not \"write\", \"sync\" or \"all\"", i, d.Op)
		}
		errno, ok := faultErrnos[d.Error]
		if !ok {
			return nil, 0, fmt.Errorf("disk[%d].error: %q is not \"EIO\" or \"ENOSPC\"", i, d.Error)
		}
		r.errno = errno
		if math.IsNaN(d.Probability) || d.Probability < 0 || d.Probability > 1 {
			return nil, 0, fmt.Errorf("disk[%d].probability: %v is not between 0 and 1", i, d.Probability)
		}
		r.p = d.Probability
		set.rules = append(set.rules, r)
	}
	var offset time.Duration
	if spec.ClockOffset != "" {
		var err error
		if offset, err = time.ParseDuration(spec.ClockOffset); err != nil {
			return nil, 0, fmt.Errorf("clockOffset: %v", err)
		}
		if offset > maxClockOffset || offset < -maxClockOffset {
			return nil, 0, fmt.Errorf("clockOffset: %s is beyond ±%s", offset, maxClockOffset)
		}
	}
	return set, offset, nil
}

// status is the answer to GET.
func (f *faultInjector) status() FaultStatus {
	out := FaultStatus{FaultSet: FaultSet{Disk: []DiskFault{}}, Injected: map[string]map[string]uint64{}}
	if set := f.set.Load(); set != nil {
		out.FaultSet = set.spec
	}
	if off := time.Duration(f.offset.Load()); off != 0 {
		out.ClockOffset = off.String()
	}
	for s, sn := range faultStoreNames {
		out.Injected[sn] = map[string]uint64{}
		for o, on := range faultOpNames {
			out.Injected[sn][on] = f.counts[s][o].Load()
		}
	}
	return out
}

// serveFaults handles /internal/v1/faults.
func (n *Node) serveFaults(w http.ResponseWriter, r *http.Request) {
	f := n.faults
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxFaultSetBytes+1))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxFaultSetBytes {
			http.Error(w, "fault set too large", http.StatusRequestEntityTooLarge)
			return
		}
		set, offset, err := parseFaultSet(body)
		if err != nil {
			http.Error(w, "bad fault set: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(set.rules) == 0 {
			f.set.Store(nil)
		} else {
			f.set.Store(set)
		}
		f.offset.Store(int64(offset))
		n.log.Warn("chaos: faults set", "disk", set.spec.Disk, "clock_offset", offset)
	case http.MethodDelete:
		f.set.Store(nil)
		f.offset.Store(0)
		n.log.Warn("chaos: faults cleared")
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeInternalJSON(w, f.status())
}
