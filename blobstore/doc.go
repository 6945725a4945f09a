// Package blobstore keeps blob content on one node's local disk, addressed by digest,
// and the upload sessions that produce it. Bytes are hashed while they stream in,
// verified at commit, fsynced and renamed into place, so a reader only ever sees a
// complete file whose content matches its name. It knows nothing about repositories,
// manifests or other nodes: that is metadata, kept elsewhere.
//
// # On-disk layout
//
// Everything lives under the root given to Open, on one filesystem (commit is a
// rename(2) from uploads/ into blobs/):
//
//	<root>/blobs/sha256/<hh>/<hex>        a committed blob; <hh> = first two hex digits;
//	<root>/blobs/sha512/<hh>/<hex>        written once, never modified, only removed
//	<root>/uploads/<id>/data              bytes received so far (appended, never read
//	                                      back except for the one sha512 re-hash, below)
//	<root>/uploads/<id>/state             JSON: size, start and last-activity times,
//	                                      declared algorithms, marshaled hash states;
//	                                      replaced atomically after every Write
//	<root>/uploads/<id>/state.tmp-*       a state being written; removed by Open
//	<root>/uploads/~put-<random>/data     a one-shot Put in progress (no state file);
//	                                      removed by Open after a crash
//
// Upload ids are chosen by the caller from [A-Za-z0-9._-] (1 to 128 characters, not
// "." or ".."), so they never start with "~" and never collide with Put's sessions.
// Nothing temporary is ever created under blobs/: the only files there are committed
// blobs, so Walk and Open need not clean it.
//
// # Durability
//
// A session's state file never claims more bytes than are durable in its data file:
// Write fsyncs the data before it replaces the state, because Commit trusts the
// streamed hash and does not read the file again. After a crash the data file may be
// longer than the state says (bytes written but not recorded); Upload truncates it
// back. Commit fsyncs the data file, renames it into place and fsyncs the directory
// before it reports success.
//
// # Concurrency
//
// A Store is safe for concurrent use. Its one mutex guards an in-memory map of
// sessions and is never held across I/O. One Write, Commit or Cancel at a time runs on
// a session; a second one fails at once with ErrUploadBusy.
package blobstore
