package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CommandType numbers the commands that change the state. Numbers are appended,
// never reused or renumbered: they are in every Raft log and snapshot.
type CommandType uint8

const (
	CmdPutBlob        CommandType = 1 // record a blob and link it into a repository (push or mount)
	CmdPutManifest    CommandType = 2 // store a manifest, its tags and its referrer entry
	CmdDeleteManifest CommandType = 3 // move a manifest, its tags and its referrer entry to the trash
	CmdDeleteTag      CommandType = 4 // move one tag to the trash
	CmdUnlinkBlob     CommandType = 5 // move a blob's link from a repository to the trash

	CmdPutUser            CommandType = 6  // create or update a user
	CmdDeleteUser         CommandType = 7  // remove a user and their memberships
	CmdPutProject         CommandType = 8  // create or update a project
	CmdDeleteProject      CommandType = 9  // remove a project without workspaces, its members and robots
	CmdSetMember          CommandType = 10 // add, change or (empty role) remove a member
	CmdPutWorkspace       CommandType = 11 // create or update a workspace
	CmdDeleteWorkspace    CommandType = 12 // move a workspace and its repositories to the trash
	CmdPutRobot           CommandType = 13 // create or update a robot account
	CmdDeleteRobot        CommandType = 14 // remove a robot account
	CmdPutSigningKey      CommandType = 15 // add a token signing key
	CmdSetRepoDescription CommandType = 16 // set a repository's description
	CmdSetBlobLocation    CommandType = 17 // record that a node holds (or lost) a verified copy of a blob
	CmdAppendAudit        CommandType = 18 // append audit events and trim the audit log (ignorable)
	CmdDeleteRepository   CommandType = 19 // move a repository with everything in it to the trash
	CmdRestore            CommandType = 20 // bring a trash item back
	CmdGCStart            CommandType = 21 // ask for a garbage collection run (one at a time)
	CmdGCBegin            CommandType = 22 // the leader claims the requested run and marks
	CmdGCPause            CommandType = 23 // pause writes cluster-wide for the sweep
	CmdGCSweep            CommandType = 24 // drop what the mark found unreachable; ends the pause
	CmdGCFinish           CommandType = 25 // end a run without a sweep (dry run, nothing to do, failure)
	CmdGCAbort            CommandType = 26 // end an active run whose leader went away
	CmdGCStats            CommandType = 27 // record a swept run's final pause and duration (ignorable)
	CmdGCNodeDone         CommandType = 28 // one node's report of its file deletions (ignorable)
	CmdGCPlan             CommandType = 29 // stage what the mark found, before the pause
	CmdNoop               CommandType = 30 // change nothing; carries a new commit index to followers (ignorable)
)

const (
	commandVersion = 1
	// flagIgnorable marks a command that a node which does not know its type may
	// skip instead of stopping (Nomad's IgnoreUnknownTypeFlag): set it on
	// commands that only add optional information.
	flagIgnorable byte = 1 << 0
)

// ErrCommandCorrupt is the error for an entry that cannot be decoded.
var ErrCommandCorrupt = errors.New("meta: corrupt command")

// Command is a typed change of the state. Every command carries the time it was
// proposed, so Apply never reads a clock.
type Command interface {
	Type() CommandType
}

// PutBlob records that a blob's bytes are durable and links it into Repo.
// Nodes lists the nodes that hold a verified copy when it is proposed.
type PutBlob struct {
	Repo   string    `json:"repo"`
	Digest Digest    `json:"digest"`
	Size   int64     `json:"size"`
	Nodes  []string  `json:"nodes,omitempty"`
	Time   time.Time `json:"time"`
}

// SetBlobLocation records that Node holds a verified copy of a recorded blob, or
// (Remove) that it no longer does.
type SetBlobLocation struct {
	Digest Digest    `json:"digest"`
	Node   string    `json:"node"`
	Remove bool      `json:"remove,omitempty"`
	Time   time.Time `json:"time"`
}

// PutManifest stores a manifest with its exact bytes, tags it with Tags, and adds
// it to its subject's referrers. Every blob in Info.Blobs must be linked to Repo
// and every manifest in Info.Manifests must be stored in Repo.
type PutManifest struct {
	Repo    string       `json:"repo"`
	Info    ManifestInfo `json:"info"`
	Digest  Digest       `json:"digest"`
	Content []byte       `json:"content"`
	Tags    []string     `json:"tags,omitempty"`
	By      string       `json:"by,omitempty"` // who pushed it, recorded on its tags
	Time    time.Time    `json:"time"`
}

// DeleteManifest moves a manifest, the tags that point at it and its referrer
// entry to the trash (trash.go); By is who deleted it.
type DeleteManifest struct {
	Repo   string    `json:"repo"`
	Digest Digest    `json:"digest"`
	By     string    `json:"by,omitempty"`
	Time   time.Time `json:"time"`
}

// DeleteTag moves one tag to the trash; the manifest stays.
type DeleteTag struct {
	Repo string    `json:"repo"`
	Tag  string    `json:"tag"`
	By   string    `json:"by,omitempty"`
	Time time.Time `json:"time"`
}

// UnlinkBlob moves a blob's link from a repository to the trash; the blob's
// bytes stay for GC.
type UnlinkBlob struct {
	Repo   string    `json:"repo"`
	Digest Digest    `json:"digest"`
	By     string    `json:"by,omitempty"`
	Time   time.Time `json:"time"`
}

// Noop changes nothing. A follower asks the leader for one when it has every
// entry up to the leader's read index but not the news that the last of them
// is committed: hashicorp/raft sends a follower a new commit index only along
// with the next entry, so after a quiet spell the last write's commit can wait
// indefinitely (node/internal.go).
type Noop struct{}

func (*Noop) Type() CommandType { return CmdNoop }
func (*Noop) Ignorable() bool   { return true }

func (*PutBlob) Type() CommandType         { return CmdPutBlob }
func (*PutManifest) Type() CommandType     { return CmdPutManifest }
func (*DeleteManifest) Type() CommandType  { return CmdDeleteManifest }
func (*DeleteTag) Type() CommandType       { return CmdDeleteTag }
func (*UnlinkBlob) Type() CommandType      { return CmdUnlinkBlob }
func (*SetBlobLocation) Type() CommandType { return CmdSetBlobLocation }

// Encode lays a command out as: version byte, type byte, flags byte, JSON body.
func Encode(c Command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("meta: encode command %d: %w", c.Type(), err)
	}
	out := make([]byte, 0, 3+len(body))
	var flags byte
	if ig, ok := c.(interface{ Ignorable() bool }); ok && ig.Ignorable() {
		flags |= flagIgnorable
	}
	out = append(out, commandVersion, byte(c.Type()), flags)
	return append(out, body...), nil
}

// Decode is the inverse of Encode. It returns (nil, nil) for an unknown command
// marked ignorable, and ErrCommandCorrupt for anything it cannot read.
func Decode(data []byte) (Command, error) {
	if len(data) < 3 || data[0] != commandVersion {
		return nil, fmt.Errorf("%w: bad header", ErrCommandCorrupt)
	}
	var c Command
	switch CommandType(data[1]) {
	case CmdPutBlob:
		c = &PutBlob{}
	case CmdPutManifest:
		c = &PutManifest{}
	case CmdDeleteManifest:
		c = &DeleteManifest{}
	case CmdDeleteTag:
		c = &DeleteTag{}
	case CmdUnlinkBlob:
		c = &UnlinkBlob{}
	case CmdPutUser:
		c = &PutUser{}
	case CmdDeleteUser:
		c = &DeleteUser{}
	case CmdPutProject:
		c = &PutProject{}
	case CmdDeleteProject:
		c = &DeleteProject{}
	case CmdSetMember:
		c = &SetMember{}
	case CmdPutWorkspace:
		c = &PutWorkspace{}
	case CmdDeleteWorkspace:
		c = &DeleteWorkspace{}
	case CmdPutRobot:
		c = &PutRobot{}
	case CmdDeleteRobot:
		c = &DeleteRobot{}
	case CmdPutSigningKey:
		c = &PutSigningKey{}
	case CmdSetRepoDescription:
		c = &SetRepoDescription{}
	case CmdSetBlobLocation:
		c = &SetBlobLocation{}
	case CmdAppendAudit:
		c = &AppendAudit{}
	case CmdDeleteRepository:
		c = &DeleteRepository{}
	case CmdRestore:
		c = &Restore{}
	case CmdGCStart:
		c = &GCStart{}
	case CmdGCBegin:
		c = &GCBegin{}
	case CmdGCPause:
		c = &GCPause{}
	case CmdGCSweep:
		c = &GCSweep{}
	case CmdGCFinish:
		c = &GCFinish{}
	case CmdGCAbort:
		c = &GCAbort{}
	case CmdGCStats:
		c = &GCStats{}
	case CmdGCNodeDone:
		c = &GCNodeDone{}
	case CmdGCPlan:
		c = &GCPlan{}
	case CmdNoop:
		c = &Noop{}
	default:
		if data[2]&flagIgnorable != 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: unknown type %d", ErrCommandCorrupt, data[1])
	}
	if err := json.Unmarshal(data[3:], c); err != nil {
		return nil, fmt.Errorf("%w: type %d: %v", ErrCommandCorrupt, data[1], err)
	}
	return c, nil
}
