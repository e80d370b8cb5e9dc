package tensorboard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// maxRecord bounds the length of a record ReadEvents accepts, so that a
// corrupt length cannot make it allocate without bound.
const maxRecord = 64 << 20

// ReadEvents reads the events of an event file: every record's framing
// and both CRCs are checked, and the events are decoded as far as this
// package knows them (wall time, step, file version and simple values;
// other fields, and summary values of other kinds such as images or
// histograms, are skipped). On a damaged or truncated record it returns
// the events before it and an error naming the record and its offset; a
// file cut inside a record (still being written) gives
// io.ErrUnexpectedEOF.
func ReadEvents(r io.Reader) ([]Event, error) {
	br := bufio.NewReader(r)
	var events []Event
	var off int64
	for i := 0; ; i++ {
		var head [12]byte
		n, err := io.ReadFull(br, head[:])
		if err == io.EOF {
			return events, nil
		}
		fail := func(err error) ([]Event, error) {
			return events, fmt.Errorf("tensorboard: record %d at offset %d: %w", i, off, err)
		}
		if err != nil {
			return fail(err)
		}
		if got, want := binary.LittleEndian.Uint32(head[8:]), MaskedCRC(head[:8]); got != want {
			return fail(fmt.Errorf("length CRC %#08x, want %#08x: the file is damaged", got, want))
		}
		size := binary.LittleEndian.Uint64(head[:8])
		if size > maxRecord {
			return fail(fmt.Errorf("length %d is over %d bytes", size, maxRecord))
		}
		data := make([]byte, size+4)
		m, err := io.ReadFull(br, data)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fail(err)
		}
		data, tail := data[:size], data[size:]
		if got, want := binary.LittleEndian.Uint32(tail), MaskedCRC(data); got != want {
			return fail(fmt.Errorf("data CRC %#08x, want %#08x: the file is damaged", got, want))
		}
		e, err := decodeEvent(data)
		if err != nil {
			return fail(err)
		}
		events = append(events, e)
		off += int64(n + m)
	}
}

var errTruncated = errors.New("truncated protocol buffer")

// field is one decoded protocol buffer field.
type field struct {
	num, wire int
	u         uint64 // varint, fixed64 and fixed32 values
	b         []byte // bytes values
}

// fields splits a protocol buffer message into its fields.
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errTruncated
		}
		b = b[n:]
		f := field{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case wireVarint:
			f.u, n = binary.Uvarint(b)
			if n <= 0 {
				return nil, errTruncated
			}
			b = b[n:]
		case wireFixed64:
			if len(b) < 8 {
				return nil, errTruncated
			}
			f.u, b = binary.LittleEndian.Uint64(b), b[8:]
		case wireFixed32:
			if len(b) < 4 {
				return nil, errTruncated
			}
			f.u, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case wireBytes:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return nil, errTruncated
			}
			f.b, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return nil, fmt.Errorf("protocol buffer wire type %d of field %d is not supported", f.wire, f.num)
		}
		out = append(out, f)
	}
	return out, nil
}

// decodeEvent decodes the tensorflow.Event fields this package knows.
func decodeEvent(b []byte) (Event, error) {
	var e Event
	fs, err := fields(b)
	if err != nil {
		return e, fmt.Errorf("event: %w", err)
	}
	for _, f := range fs {
		switch {
		case f.num == eventWallTime && f.wire == wireFixed64:
			e.WallTime = math.Float64frombits(f.u)
		case f.num == eventStep && f.wire == wireVarint:
			e.Step = int64(f.u)
		case f.num == eventFileVersion && f.wire == wireBytes:
			e.FileVersion = string(f.b)
		case f.num == eventSummary && f.wire == wireBytes:
			vs, err := decodeSummary(f.b)
			if err != nil {
				return e, fmt.Errorf("event summary: %w", err)
			}
			e.Values = append(e.Values, vs...)
		}
	}
	return e, nil
}

func decodeSummary(b []byte) ([]Value, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	var out []Value
	for _, f := range fs {
		if f.num != summaryValue || f.wire != wireBytes {
			continue
		}
		vf, err := fields(f.b)
		if err != nil {
			return nil, err
		}
		var v Value
		simple := false
		for _, g := range vf {
			switch {
			case g.num == valueTag && g.wire == wireBytes:
				v.Tag = string(g.b)
			case g.num == valueSimpleValue && g.wire == wireFixed32:
				v.SimpleValue, simple = math.Float32frombits(uint32(g.u)), true
			}
		}
		if simple {
			out = append(out, v)
		}
	}
	return out, nil
}
