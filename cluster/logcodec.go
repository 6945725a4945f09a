package cluster

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// logCodecV1 is the first byte of every encoded raft.Log. A new layout gets a
// new version byte; decodeLog keeps reading the old ones.
const logCodecV1 = 1

// encodeLog appends the binary encoding of l to dst and returns it:
//
//	version   byte (1)
//	index     uvarint
//	term      uvarint
//	type      byte (raft.LogType)
//	data      uvarint length, bytes
//	ext       uvarint length, bytes
//	appended  byte 0 (zero time) | byte 1, varint unix seconds, uvarint nanoseconds
//
// It is written by hand instead of with msgpack reflection: it is small, has
// no dependency, allocates nothing but dst, and its layout is fixed here.
// AppendedAt keeps its instant, not its location or monotonic reading.
func encodeLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, logCodecV1)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	if l.AppendedAt.IsZero() {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
	return binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
}

// decodeLog decodes src (as written by encodeLog) into out. The byte slices
// of out are fresh copies, so src may be reused after it returns. Any
// malformed input is an error wrapping ErrCorruptLog.
func decodeLog(src []byte, out *raft.Log) error {
	d := logDecoder{buf: src}
	if v := d.u8(); d.err == nil && v != logCodecV1 {
		return fmt.Errorf("unknown log encoding version %d: %w", v, ErrCorruptLog)
	}
	var l raft.Log
	l.Index = d.uvarint()
	l.Term = d.uvarint()
	l.Type = raft.LogType(d.u8())
	l.Data = d.bytes()
	l.Extensions = d.bytes()
	switch flag := d.u8(); {
	case d.err != nil:
	case flag == 1:
		sec := d.varint()
		nsec := d.uvarint()
		if d.err == nil && nsec >= uint64(time.Second) {
			d.fail("appended-at nanoseconds out of range")
		}
		l.AppendedAt = time.Unix(sec, int64(nsec))
	case flag != 0:
		d.fail("bad appended-at flag")
	}
	if d.err == nil && len(d.buf) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	*out = l
	return nil
}

// logDecoder reads fields from buf; after the first failure every read
// returns a zero value and err keeps the first failure.
type logDecoder struct {
	buf []byte
	err error
}

func (d *logDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, ErrCorruptLog)
	}
	d.buf = nil
}

func (d *logDecoder) u8() byte {
	if d.err != nil || len(d.buf) < 1 {
		d.fail("short entry")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *logDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *logDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// bytes reads a length-prefixed byte string; an empty one decodes as nil.
func (d *logDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail("length beyond entry")
		return nil
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	copy(b, d.buf[:n])
	d.buf = d.buf[n:]
	return b
}
