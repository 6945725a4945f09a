package blobstore

import (
	"context"
	"io"
	"os"
	"sync/atomic"
)

// Write's pipeline. Reading, hashing and writing run on three goroutines joined by
// channels over a fixed set of buffers, so a large upload is bound by the slowest
// stage (sha256, about 1 GB/s on one core) rather than by the sum of all three, and
// holds at most nBufs*bufSize bytes however large it is.
const (
	bufSize   = 1 << 20  // bytes per read, hash and write
	nBufs     = 4        // buffers per Write in flight: one per stage plus one spare
	syncEvery = 16 << 20 // bytes after which writeback of the written range is started
)

// chunk is a filled buffer travelling down the pipeline.
type chunk struct {
	buf *[]byte
	n   int
}

// stream copies r into f starting at offset off. Each chunk is passed to hash, in
// order, on the caller's goroutine before it is written, so hash sees exactly the
// byte stream. A reader goroutine fills buffers from r and a writer goroutine writes
// them with WriteAt, starting writeback every syncEvery bytes so that the final fsync
// has little left to do.
//
// readErr is what ended reading: nil at io.EOF, ctx.Err() when ctx was done, ErrClosed
// when the store was closed, or r's error. writeErr is the first error writing f;
// nothing is written after it. When writeErr is nil every hashed byte was written and
// written is their count. r is not used after stream returns.
func (s *Store) stream(ctx context.Context, r io.Reader, f *os.File, off int64, hash func([]byte)) (written int64, readErr, writeErr error) {
	free := make(chan *[]byte, nBufs)
	for range nBufs {
		free <- s.bufs.Get().(*[]byte)
	}
	filled := make(chan chunk, nBufs)
	toWrite := make(chan chunk, nBufs)
	stop := make(chan struct{}) // closed by the writer when it fails
	var failed atomic.Bool      // set with stop; the hasher skips work that will be rolled back

	go func() { // reader: the only goroutine that touches r
		defer close(filled)
		for {
			var b *[]byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			if err := ctx.Err(); err != nil {
				free <- b
				readErr = err
				return
			}
			if s.isClosed() {
				free <- b
				readErr = ErrClosed
				return
			}
			n, err := readFull(r, *b)
			if n > 0 {
				filled <- chunk{b, n}
			} else {
				free <- b
			}
			if err != nil {
				if err != io.EOF {
					readErr = err
				}
				return
			}
		}
	}()

	done := make(chan struct{})
	go func() { // writer
		defer close(done)
		pos, submitted := off, off
		for c := range toWrite {
			if writeErr == nil {
				err := s.fault(FaultWrite, f.Name())
				if err == nil {
					_, err = f.WriteAt((*c.buf)[:c.n], pos)
				}
				if err != nil {
					writeErr = err
					failed.Store(true)
					close(stop)
				} else {
					pos += int64(c.n)
					if pos-submitted >= syncEvery {
						startWriteback(f, submitted, pos-submitted)
						submitted = pos
					}
				}
			}
			free <- c.buf
		}
		written = pos - off
	}()

	for c := range filled {
		if !failed.Load() {
			hash((*c.buf)[:c.n])
		}
		toWrite <- c
	}
	close(toWrite)
	<-done
	for range nBufs {
		s.bufs.Put(<-free)
	}
	return written, readErr, writeErr
}

// readFull reads until b is full or r fails. Unlike io.ReadFull it passes r's error
// through unchanged (a truncated HTTP body's io.ErrUnexpectedEOF must not be taken
// for a clean end), and io.EOF means the stream ended.
func readFull(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
