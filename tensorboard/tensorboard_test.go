package tensorboard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCRC32CVectors(t *testing.T) {
	ff := bytes.Repeat([]byte{0xff}, 32)
	inc := make([]byte, 32)
	for i := range inc {
		inc[i] = byte(i)
	}
	// The check value of CRC-32C and the test vectors of RFC 3720, B.4.
	for _, tc := range []struct {
		data []byte
		want uint32
	}{
		{[]byte("123456789"), 0xE3069283},
		{make([]byte, 32), 0x8A9136AA},
		{ff, 0x62A8AB43},
		{inc, 0x46DD794E},
	} {
		if got := crc32.Checksum(tc.data, castagnoli); got != tc.want {
			t.Errorf("CRC32C(% x…) = %#08x, want %#08x", tc.data[:4], got, tc.want)
		}
		// The mask, worked by hand from its definition.
		c := tc.want
		if got, want := MaskedCRC(tc.data), ((c>>15)|(c<<17))+0xa282ead8; got != want {
			t.Errorf("MaskedCRC = %#08x, want %#08x", got, want)
		}
	}
	// "123456789": 0xE3069283 rotated right by 15 is 0x2507C60D, plus
	// 0xa282ead8 is 0xC78AB0E5.
	if got := MaskedCRC([]byte("123456789")); got != 0xC78AB0E5 {
		t.Errorf("MaskedCRC(123456789) = %#08x, want 0xc78ab0e5", got)
	}
}

// TestFileHeader checks the first record's framing against the bytes
// every event file TensorFlow writes starts with: a 24-byte record
// (wall time and "brain.Event:2") whose length's masked CRC is a3 7f 4b 22.
func TestFileHeader(t *testing.T) {
	var buf bytes.Buffer
	w := newWriter(&buf, nil, func() time.Time { return time.Unix(1700000000, 500000000) })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	want := []byte{0x18, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0x7f, 0x4b, 0x22, 0x09}
	if !bytes.HasPrefix(b, want) {
		t.Fatalf("file starts % x, want % x", b[:min(len(b), len(want))], want)
	}
	data := b[12 : 12+24]
	if wt := math.Float64frombits(binary.LittleEndian.Uint64(data[1:9])); wt != 1700000000.5 {
		t.Errorf("wall time %v", wt)
	}
	if got := string(data[9:]); got != "\x1a\x0dbrain.Event:2" {
		t.Errorf("file_version field %q", got)
	}
	if len(b) != 12+24+4 || binary.LittleEndian.Uint32(b[36:]) != MaskedCRC(data) {
		t.Errorf("bad data CRC or length %d", len(b))
	}
}

// TestEncodeEvent pins the protocol buffer bytes, encoded by hand.
func TestEncodeEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Event
		want []byte
	}{
		{"scalar", Event{WallTime: 1.5, Step: 3, Values: []Value{{Tag: "loss", SimpleValue: 0.5}}}, []byte{
			0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // wall_time = 1.5 (double)
			0x10, 0x03, // step = 3
			0x2a, 0x0d, // summary, 13 bytes
			0x0a, 0x0b, // value, 11 bytes
			0x0a, 0x04, 'l', 'o', 's', 's', // tag
			0x15, 0, 0, 0, 0x3f, // simple_value = 0.5 (float)
		}},
		{"step 300", Event{Step: 300}, []byte{0x10, 0xac, 0x02}},
		{"negative step", Event{Step: -1}, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"zero value is written", Event{Values: []Value{{Tag: "a"}}}, []byte{0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 'a', 0x15, 0, 0, 0, 0}},
		{"empty", Event{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := encodeEvent(tc.e); !bytes.Equal(got, tc.want) {
				t.Errorf("encodeEvent = % x\nwant          % x", got, tc.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(1700000000, 0)
	w := newWriter(&buf, nil, func() time.Time { clock = clock.Add(250 * time.Millisecond); return clock })
	scalars := []struct {
		tag   string
		step  int64
		value float64
	}{
		{"loss/train", 0, 2.302585},
		{"loss/train", 1, 1.5},
		{"accuracy/test", 1, 0.9842},
		{"lr", math.MaxInt64, 1e-3},
		{"weird ✓ tag", -5, math.Inf(-1)},
	}
	for _, s := range scalars {
		if err := w.Scalar(s.tag, s.step, s.value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	events, err := ReadEvents(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{{WallTime: 1700000000.25, FileVersion: FileVersion}}
	for i, s := range scalars {
		want = append(want, Event{WallTime: 1700000000.25 + 0.25*float64(i+1), Step: s.step, Values: []Value{{Tag: s.tag, SimpleValue: float32(s.value)}}})
	}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("ReadEvents =\n%+v\nwant\n%+v", events, want)
	}
}

func TestCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tb", "teacher")
	var paths []string
	for range 2 {
		w, err := Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Scalar("loss", 1, 0.25); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		// Flushed events are in the file before Close.
		f, err := os.Open(w.Path())
		if err != nil {
			t.Fatal(err)
		}
		events, err := ReadEvents(f)
		f.Close()
		if err != nil || len(events) != 2 || events[1].Values[0] != (Value{"loss", 0.25}) {
			t.Errorf("after Flush: %+v, %v", events, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Scalar("loss", 2, 0); err == nil {
			t.Error("Scalar after Close: no error")
		}
		paths = append(paths, w.Path())
	}
	name := regexp.MustCompile(`^events\.out\.tfevents\.\d{10}\.[^/]+$`)
	for _, p := range paths {
		if filepath.Dir(p) != dir || !name.MatchString(filepath.Base(p)) {
			t.Errorf("event file %s", p)
		}
	}
	if paths[0] == paths[1] {
		t.Error("two writers share a file")
	}
}

func TestScalarErrors(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.Scalar("", 1, 1); err == nil || !strings.Contains(err.Error(), "needs a tag") {
		t.Errorf("empty tag: %v", err)
	}
	// A write error is kept and returned from then on.
	w = NewWriter(failing{})
	for i := range 1000 { // enough to overflow bufio's buffer
		w.Scalar("loss", int64(i), 1)
	}
	if err := w.Close(); err == nil || !errors.Is(err, errDisk) {
		t.Errorf("Close after failed writes: %v", err)
	}
}

var errDisk = errors.New("disk full")

type failing struct{}

func (failing) Write(p []byte) (int, error) { return 0, errDisk }

func TestReadEventsErrors(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Scalar("a", 1, 1)
	w.Scalar("b", 2, 2)
	w.Close()
	good := buf.Bytes()
	recLen := func(off int) int { return 12 + int(binary.LittleEndian.Uint64(good[off:])) + 4 }
	r0 := recLen(0)
	r1 := recLen(r0)
	for _, tc := range []struct {
		name   string
		edit   func([]byte) []byte
		events int
		want   string
		is     error
	}{
		{"length CRC", func(b []byte) []byte { b[r0+8] ^= 1; return b }, 1, "record 1 at offset " + strconv.Itoa(r0) + ": length CRC", nil},
		{"data CRC", func(b []byte) []byte { b[r0+r1+14] ^= 1; return b }, 2, "record 2 at offset " + strconv.Itoa(r0+r1) + ": data CRC", nil},
		{"cut in the data", func(b []byte) []byte { return b[:len(b)-3] }, 2, "record 2", io.ErrUnexpectedEOF},
		{"cut in the header", func(b []byte) []byte { return b[:r0+5] }, 1, "record 1", io.ErrUnexpectedEOF},
		{"huge length", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[r0:], 1<<40)
			binary.LittleEndian.PutUint32(b[r0+8:], MaskedCRC(b[r0:r0+8]))
			return b
		}, 1, "is over", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events, err := ReadEvents(bytes.NewReader(tc.edit(bytes.Clone(good))))
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if len(events) != tc.events {
				t.Errorf("%d events before the damage, want %d", len(events), tc.events)
			}
		})
	}
	if events, err := ReadEvents(bytes.NewReader(nil)); err != nil || len(events) != 0 {
		t.Errorf("empty file: %v, %v", events, err)
	}
}

func TestDecodeSkipsUnknownFields(t *testing.T) {
	// An event as TensorFlow may write it: an unknown varint field (99),
	// a summary with an image value (no simple_value) and a scalar.
	var b []byte
	b = appendKey(b, 99, wireVarint)
	b = append(b, 7)
	b = appendKey(b, eventStep, wireVarint)
	b = append(b, 4)
	img := appendBytes(appendBytes(nil, valueTag, []byte("img")), 4, []byte("png…"))
	scalar := encodeEvent(Event{Values: []Value{{Tag: "x", SimpleValue: 2}}})
	sum := appendBytes(nil, summaryValue, img)
	b = appendBytes(b, eventSummary, sum)
	b = append(b, scalar...)
	e, err := decodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Step != 4 || !reflect.DeepEqual(e.Values, []Value{{"x", 2}}) {
		t.Errorf("decoded %+v", e)
	}
	if _, err := decodeEvent([]byte{0x0a, 0x05, 'a'}); err == nil {
		t.Error("truncated message: no error")
	}
	if _, err := decodeEvent([]byte{0x0b}); err == nil {
		t.Error("group wire type: no error")
	}
}

func BenchmarkScalar(b *testing.B) {
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := w.Scalar("loss/train", int64(i), 0.25); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConcurrentScalars(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 100 {
				w.Scalar("g"+strconv.Itoa(g), int64(i), float64(i))
			}
		}()
	}
	for range 4 {
		<-done
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := ReadEvents(&buf)
	if err != nil || len(events) != 1+400 {
		t.Errorf("%d events, %v", len(events), err)
	}
}
