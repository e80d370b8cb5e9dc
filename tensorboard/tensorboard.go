// Package tensorboard writes scalar summaries (training loss, accuracy,
// learning rate, …) as TensorBoard event files, so that
//
//	tensorboard --logdir RUN_DIR/tensorboard
//
// plots a run's curves.
//
// An event file (events.out.tfevents.<unix seconds>.<host>) is a
// sequence of TFRecords, each one serialized tensorflow.Event protocol
// buffer:
//
//	uint64 length (little endian)
//	uint32 masked CRC-32C of the length bytes
//	length bytes of data
//	uint32 masked CRC-32C of the data
//
// where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8. The first
// event carries file_version "brain.Event:2"; each later one a wall time,
// a step and a Summary with one simple_value.
//
// There is no maintained Go package that writes event files without
// pulling in TensorFlow's generated protobuf code, and only five fields
// of two messages are needed, so this package encodes them by hand
// (see encodeEvent). ReadEvents decodes the same subset, for tests and
// tools.
package tensorboard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FileVersion is the file_version of the first event of every file.
const FileVersion = "brain.Event:2"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC returns the masked CRC-32C (Castagnoli) of b that TFRecord
// stores: the CRC rotated right by 15 bits plus 0xa282ead8, so that a
// CRC of data holding CRCs is not itself a weak check.
func MaskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Writer writes events to one event file. Its methods are safe for
// concurrent use.
type Writer struct {
	mu     sync.Mutex
	w      *bufio.Writer
	c      io.Closer // nil for NewWriter
	path   string
	now    func() time.Time
	err    error // the first write error; sticky
	closed bool
}

// Create creates a new event file in dir (made if missing) named
// events.out.tfevents.<unix seconds>.<host name>, or, if a file of that
// name exists, with a ".N" suffix, and writes the file_version event.
// The caller must Close the writer.
func Create(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, host)
	now := time.Now()
	base := filepath.Join(dir, "events.out.tfevents."+strconv.FormatInt(now.Unix(), 10)+"."+host)
	for i := 0; ; i++ {
		path := base
		if i > 0 {
			path += "." + strconv.Itoa(i)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) && i < 1000 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tensorboard: %w", err)
		}
		w := newWriter(f, f, time.Now)
		w.path = path
		if err := w.Flush(); err != nil {
			f.Close()
			return nil, err
		}
		return w, nil
	}
}

// NewWriter returns a Writer that writes events to w, starting with the
// file_version event. Close flushes it but does not close w.
func NewWriter(w io.Writer) *Writer { return newWriter(w, nil, time.Now) }

func newWriter(w io.Writer, c io.Closer, now func() time.Time) *Writer {
	wr := &Writer{w: bufio.NewWriter(w), c: c, now: now}
	wr.write(Event{WallTime: wallTime(now()), FileVersion: FileVersion})
	return wr
}

func wallTime(t time.Time) float64 { return float64(t.Unix()) + float64(t.Nanosecond())/1e9 }

// Path returns the event file's path; "" for a NewWriter.
func (w *Writer) Path() string { return w.path }

// Scalar records value under tag (e.g. "loss/train") at step, stamped
// with the current time. TensorBoard stores simple values as float32.
// Events are buffered: call Flush for a reader to see them.
func (w *Writer) Scalar(tag string, step int64, value float64) error {
	if tag == "" {
		return errors.New("tensorboard: a scalar needs a tag, e.g. \"loss/train\"")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("tensorboard: scalar written after Close")
	}
	w.write(Event{WallTime: wallTime(w.now()), Step: step, Values: []Value{{Tag: tag, SimpleValue: float32(value)}}})
	return w.err
}

// write appends one record; w.mu is held (or w is not yet shared).
func (w *Writer) write(e Event) {
	if w.err != nil {
		return
	}
	data := encodeEvent(e)
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(head[8:], MaskedCRC(head[:8]))
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], MaskedCRC(data))
	for _, b := range [][]byte{head[:], data, tail[:]} {
		if _, err := w.w.Write(b); err != nil {
			w.err = fmt.Errorf("tensorboard: write %s: %w", w.name(), err)
			return
		}
	}
}

func (w *Writer) name() string {
	if w.path == "" {
		return "events"
	}
	return w.path
}

// Flush writes the buffered events to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}

func (w *Writer) flush() error {
	if w.err == nil {
		if err := w.w.Flush(); err != nil {
			w.err = fmt.Errorf("tensorboard: write %s: %w", w.name(), err)
		}
	}
	return w.err
}

// Close flushes the events and closes the file. Closing twice is a
// no-op.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.flush()
	if w.c != nil {
		if cerr := w.c.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("tensorboard: close %s: %w", w.name(), cerr)
		}
	}
	return err
}

// Event is the part of tensorflow.Event this package writes and reads.
type Event struct {
	WallTime float64 // seconds since the Unix epoch
	Step     int64
	// FileVersion is set on the first event of a file only.
	FileVersion string
	// Values are the summary's values (one per Scalar call).
	Values []Value
}

// Value is one tensorflow.Summary.Value with a simple_value.
type Value struct {
	Tag         string
	SimpleValue float32
}

// Protocol buffer wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// Field numbers of tensorflow.Event, Summary and Summary.Value.
const (
	eventWallTime    = 1 // double
	eventStep        = 2 // int64
	eventFileVersion = 3 // string (oneof what)
	eventSummary     = 5 // Summary (oneof what)
	summaryValue     = 1 // repeated Value
	valueTag         = 1 // string
	valueSimpleValue = 2 // float (oneof value)
)

func appendKey(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field<<3|wire))
}

func appendBytes(b []byte, field int, data []byte) []byte {
	b = appendKey(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// encodeEvent serializes e as a tensorflow.Event protocol buffer, fields
// in field-number order, as the reference implementation writes them.
// Zero fields are left out (proto3), except that a Value's simple_value
// is always written: it is a oneof member, so its presence matters.
func encodeEvent(e Event) []byte {
	var b []byte
	if e.WallTime != 0 {
		b = appendKey(b, eventWallTime, wireFixed64)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.WallTime))
	}
	if e.Step != 0 {
		b = appendKey(b, eventStep, wireVarint)
		b = binary.AppendUvarint(b, uint64(e.Step)) // int64: two's complement, 10 bytes if negative
	}
	if e.FileVersion != "" {
		b = appendBytes(b, eventFileVersion, []byte(e.FileVersion))
	}
	if len(e.Values) > 0 {
		var sum []byte
		for _, v := range e.Values {
			var vb []byte
			if v.Tag != "" {
				vb = appendBytes(vb, valueTag, []byte(v.Tag))
			}
			vb = appendKey(vb, valueSimpleValue, wireFixed32)
			vb = binary.LittleEndian.AppendUint32(vb, math.Float32bits(v.SimpleValue))
			sum = appendBytes(sum, summaryValue, vb)
		}
		b = appendBytes(b, eventSummary, sum)
	}
	return b
}
