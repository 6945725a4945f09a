package cluster

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestLogCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		log  raft.Log
	}{
		{"zero", raft.Log{}},
		{"command", raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("hello"), AppendedAt: time.Unix(1700000000, 123456789)}},
		{"noop no data", raft.Log{Index: 2, Term: 3, Type: raft.LogNoop}},
		{"barrier", raft.Log{Index: 3, Term: 3, Type: raft.LogBarrier}},
		{"configuration", raft.Log{Index: 4, Term: 3, Type: raft.LogConfiguration, Data: []byte{0, 1, 2, 3}}},
		{"extensions", raft.Log{Index: 5, Term: 3, Data: []byte("d"), Extensions: []byte("ext")}},
		{"extensions only", raft.Log{Index: 6, Term: 3, Extensions: []byte{0}}},
		{"max values", raft.Log{Index: ^uint64(0), Term: ^uint64(0), Type: raft.LogType(255)}},
		{"big data", raft.Log{Index: 7, Term: 1, Data: bytes.Repeat([]byte("abc"), 100000)}},
		{"time before epoch", raft.Log{Index: 8, Term: 1, AppendedAt: time.Date(1960, 1, 2, 3, 4, 5, 6, time.UTC)}},
		{"time with zone and monotonic", raft.Log{Index: 9, Term: 1, AppendedAt: time.Now().In(time.FixedZone("x", 3600))}},
		{"time far future", raft.Log{Index: 10, Term: 1, AppendedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := encodeLog(nil, &tc.log)
			var got raft.Log
			if err := decodeLog(buf, &got); err != nil {
				t.Fatalf("decodeLog: %v", err)
			}
			if !equalLog(&got, &tc.log) {
				t.Fatalf("round trip: got %+v, want %+v", got, tc.log)
			}
			if tc.log.AppendedAt.IsZero() != got.AppendedAt.IsZero() {
				t.Fatalf("AppendedAt zero: got %v, want %v", got.AppendedAt.IsZero(), tc.log.AppendedAt.IsZero())
			}
			// Decoded slices do not alias the encoded buffer.
			for i := range buf {
				buf[i] = 0xee
			}
			if !equalLog(&got, &tc.log) {
				t.Fatalf("decoded log changed with its source buffer")
			}
		})
	}
}

func TestLogCodecAppends(t *testing.T) {
	prefix := []byte("keep")
	l := raft.Log{Index: 7, Term: 2, Data: []byte("x")}
	buf := encodeLog(append([]byte(nil), prefix...), &l)
	if !bytes.HasPrefix(buf, prefix) {
		t.Fatalf("encodeLog dropped dst: got %q", buf)
	}
	var got raft.Log
	if err := decodeLog(buf[len(prefix):], &got); err != nil || !equalLog(&got, &l) {
		t.Fatalf("decode appended: got %+v, %v", got, err)
	}
}

func TestLogCodecCorrupt(t *testing.T) {
	good := encodeLog(nil, &raft.Log{Index: 1, Term: 1, Data: []byte("data"), AppendedAt: time.Unix(5, 6)})
	tests := []struct {
		name string
		buf  []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{9}, good[1:]...)},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"data length beyond entry", []byte{1, 1, 1, 0, 50, 'a'}},
		{"bad time flag", []byte{1, 1, 1, 0, 0, 0, 7}},
		{"nanoseconds out of range", append([]byte{1, 1, 1, 0, 0, 0, 1, 0}, 0x80, 0x94, 0xeb, 0xdc, 0x03)},
		{"truncated varint", []byte{1, 0x80}},
	}
	for i := 1; i < len(good); i++ {
		tests = append(tests, struct {
			name string
			buf  []byte
		}{"truncated", good[:i]})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got raft.Log
			if err := decodeLog(tc.buf, &got); !errors.Is(err, ErrCorruptLog) {
				t.Fatalf("decodeLog(%x): got %v, want ErrCorruptLog", tc.buf, err)
			}
		})
	}
}

func BenchmarkLogCodec(b *testing.B) {
	l := raft.Log{Index: 123456, Term: 7, Type: raft.LogCommand, Data: bytes.Repeat([]byte("m"), 512), AppendedAt: time.Now()}
	var buf []byte
	var out raft.Log
	for b.Loop() {
		buf = encodeLog(buf[:0], &l)
		if err := decodeLog(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}
