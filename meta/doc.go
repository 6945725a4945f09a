// Package meta is Berth's metadata model: repositories, blobs and their links into
// repositories, manifests with their exact bytes, tags and referrers. It holds the
// domain types, the key layout, the reads, and the typed commands that change the
// state. The state changes only through Apply, which runs a command against a small
// transactional key-value interface (Txn); the same code runs on a Pebble batch under
// Raft (package meta/fsm) and can run on any other store with the same contract.
//
// # Key layout
//
// Every key starts with a one-letter table name and a slash. Repository names never
// contain a NUL byte, so NUL separates the parts of composite keys and keeps a
// repository's keys together and in lexical order:
//
//	r/<repo>                          -> repoRecord                 repositories (catalog order)
//	b/<digest>                        -> blobRecord                 blobs known to the cluster: size, first and last push
//	l/<repo>\x00<digest>              -> linkRecord                 blob linked into a repository (pushed or mounted)
//	bn/<digest>\x00<node>             -> empty                      nodes that hold a verified copy of the blob
//	bl/<digest>\x00<repo>             -> empty                      reverse index: repositories a blob is linked into
//	m/<repo>\x00<digest>              -> manifest header + bytes    manifests, exact bytes as pushed
//	t/<repo>\x00<tag>                 -> tagRecord                  tags (lexical order for tags/list)
//	g/<repo>\x00<digest>\x00<tag>     -> empty                      reverse tag index: tags of a manifest
//	f/<repo>\x00<subject>\x00<digest> -> Referrer                   referrers of a subject
//	u/<user>                          -> User                       users (bcrypt hash, cloud-admin flag)
//	p/<project>                       -> Project                    projects (tenants)
//	pm/<project>\x00<user>            -> Member                     a project's members and their roles
//	um/<user>\x00<project>            -> empty                      reverse index: a user's projects
//	w/<workspace>                     -> Workspace                  workspaces, unique in the cluster
//	pw/<project>\x00<workspace>       -> empty                      reverse index: a project's workspaces
//	o/<project>\x00<robot>            -> Robot                      robot accounts
//	k/<key id>                        -> SigningKey                 token signing keys
//	x/<ws>\x00<item id>               -> TrashItem                  a workspace's trash: what was deleted, by whom, when (trash.go)
//	xp/<ws>\x00<item id>\x00<key>     -> the record at <key>        a trash item's payload: the deleted records under their keys
//	gc/active                         -> run id                     the active garbage collection run, if any (gc.go)
//	gc/run/<id>                       -> GCRun                      garbage collection runs and their reports (the last 50)
//	gc/dirty/<index, 8 bytes BE>      -> DirtyEntry                 what a command changed during the active run's mark
//	gc/swept/<id>                     -> SweptBlobs                 the blobs a run swept, for the nodes to delete their files
//	a/<time hex>-<node>-<seq>         -> AuditEvent                 audit log in time order (audit.go)
//	ac/count                          -> uint64 big-endian          number of audit events (the count cap)
//
// Deleting (a tag, manifest, blob link, repository or workspace) moves its records
// from the live tables to its workspace's trash (x/, xp/), so the live tables hold
// only live things and every read hides a deleted one without knowing the trash.
//
// Keys of this package begin with a byte >= 0x61 ('a'); the bytes below 0x20 are
// reserved for the store that hosts the state (the FSM's applied index, the Raft log).
package meta
