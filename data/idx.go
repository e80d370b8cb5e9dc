package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// IDX element type codes, the third byte of an IDX file's magic number.
const (
	IDXUint8   byte = 0x08 // unsigned byte
	IDXInt8    byte = 0x09 // signed byte
	IDXInt16   byte = 0x0B // big-endian int16
	IDXInt32   byte = 0x0C // big-endian int32
	IDXFloat32 byte = 0x0D // big-endian IEEE 754 float32
	IDXFloat64 byte = 0x0E // big-endian IEEE 754 float64
)

// ErrIDXFormat is wrapped by every error that ReadIDX and WriteIDX return
// because the data is not a well-formed IDX file (as opposed to an I/O
// error of the underlying reader or writer). Test with errors.Is.
var ErrIDXFormat = errors.New("invalid IDX data")

// gzipMagic starts every gzip stream; an IDX file starts with 0x00 0x00,
// so the two cannot be confused.
var gzipMagic = []byte{0x1f, 0x8b}

// IDX is a tensor in the IDX file format used by MNIST
// (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number (two zero
// bytes, an element type code, the number of dimensions), one big-endian
// uint32 per dimension, then the elements in row-major order.
type IDX struct {
	// Type is the element type code, one of the IDX* constants.
	Type byte
	// Dims are the dimensions, outermost first, e.g. [60000, 28, 28].
	Dims []int
	// Data holds the elements exactly as stored in the file: for IDXUint8
	// one byte per element, for wider types big-endian bytes.
	Data []byte
}

// Len returns the number of elements, the product of Dims.
func (x *IDX) Len() int {
	n := 1
	for _, d := range x.Dims {
		n *= d
	}
	return n
}

// idxElemSize returns the size in bytes of one element of type t, and
// false for a type code that the IDX format does not define.
func idxElemSize(t byte) (int, bool) {
	switch t {
	case IDXUint8, IDXInt8:
		return 1, true
	case IDXInt16:
		return 2, true
	case IDXInt32, IDXFloat32:
		return 4, true
	case IDXFloat64:
		return 8, true
	}
	return 0, false
}

// idxTypeName names an IDX type code for messages.
func idxTypeName(t byte) string {
	switch t {
	case IDXUint8:
		return "unsigned byte"
	case IDXInt8:
		return "signed byte"
	case IDXInt16:
		return "int16"
	case IDXInt32:
		return "int32"
	case IDXFloat32:
		return "float32"
	case IDXFloat64:
		return "float64"
	}
	return fmt.Sprintf("unknown type 0x%02x", t)
}

// errUnsupportedType explains an unknown type code.
func errUnsupportedType(t byte) error {
	return fmt.Errorf("%w: unsupported element type code 0x%02x; IDX defines 0x08 (unsigned byte), 0x09 (signed byte), 0x0B (int16), 0x0C (int32), 0x0D (float32) and 0x0E (float64)",
		ErrIDXFormat, t)
}

// idxDataSize returns the number of data bytes that dims of type t
// declare, rejecting more than maxElements elements (or more bytes than an
// int can count) before anything is allocated.
func idxDataSize(t byte, dims []int) (int, error) {
	es, ok := idxElemSize(t)
	if !ok {
		return 0, errUnsupportedType(t)
	}
	if len(dims) == 0 || len(dims) > 255 {
		return 0, fmt.Errorf("%w: %d dimensions; IDX needs between 1 and 255", ErrIDXFormat, len(dims))
	}
	// A zero dimension makes the product 0 whatever the others are, so
	// look for one before multiplying (and possibly overflowing).
	zero := false
	for _, d := range dims {
		if d < 0 || uint64(d) > math.MaxUint32 {
			return 0, fmt.Errorf("%w: dimension %d is outside the IDX range [0, 2^32)", ErrIDXFormat, d)
		}
		zero = zero || d == 0
	}
	if zero {
		return 0, nil
	}
	var n uint64 = 1
	for _, d := range dims {
		if n > uint64(maxElements)/uint64(d) {
			return 0, fmt.Errorf("%w: dimensions %v declare more than %d elements; the header is corrupt or the file is not an IDX file",
				ErrIDXFormat, dims, maxElements)
		}
		n *= uint64(d)
	}
	if n > uint64(math.MaxInt/es) {
		return 0, fmt.Errorf("%w: dimensions %v of %d-byte elements are too large for this platform", ErrIDXFormat, dims, es)
	}
	return int(n) * es, nil
}

// sourceReader remembers the last non-EOF error of the reader it wraps, so
// that ReadIDX can tell the caller's I/O errors from corrupt gzip data.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// ReadIDX reads one IDX file from r. If the stream starts with the gzip
// magic bytes it is decompressed transparently, so .gz files need no
// special handling. Every element type of the format is accepted; callers
// check Type for the one they expect.
//
// The header is checked before the data is read: more than 1<<31 elements
// is rejected at once, and the data buffer grows only as bytes actually
// arrive, so a corrupt or hostile header cannot make ReadIDX allocate far
// more memory than the input holds. ReadIDX reads r to its end: data
// missing from, or left over after, what the header declares is an error,
// as is a gzip stream whose checksum does not match. Errors caused by the
// content wrap [ErrIDXFormat]; errors of r itself are returned wrapped as
// they are.
func ReadIDX(r io.Reader) (*IDX, error) {
	src := &sourceReader{r: r}
	br := bufio.NewReaderSize(src, 64<<10)
	var in io.Reader = br
	compressed := false
	if magic, _ := br.Peek(2); slices.Equal(magic, gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, readError(src, true, "gzip header", err)
		}
		defer zr.Close()
		in, compressed = zr, true
	}

	var head [4]byte
	if n, err := io.ReadFull(in, head[:]); err != nil {
		if src.err == nil && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: the input ends after %d bytes, inside the 4-byte header; the file is empty or truncated",
				ErrIDXFormat, n)
		}
		return nil, readError(src, compressed, "header", err)
	}
	if head[0] != 0 || head[1] != 0 {
		return nil, fmt.Errorf("%w: bad magic number % x; an IDX file starts with two zero bytes, a type code and a dimension count (is this the right file?)",
			ErrIDXFormat, head[:])
	}
	typ, ndims := head[2], int(head[3])
	if _, ok := idxElemSize(typ); !ok {
		return nil, errUnsupportedType(typ)
	}
	if ndims == 0 {
		return nil, fmt.Errorf("%w: the header declares 0 dimensions; IDX needs at least 1", ErrIDXFormat)
	}

	raw := make([]byte, 4*ndims)
	if n, err := io.ReadFull(in, raw); err != nil {
		if src.err == nil && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: the header declares %d dimensions but the input ends after %d of their %d bytes; the file is truncated",
				ErrIDXFormat, ndims, n, len(raw))
		}
		return nil, readError(src, compressed, "dimensions", err)
	}
	dims := make([]int, ndims)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(raw[4*i:]))
	}
	size, err := idxDataSize(typ, dims)
	if err != nil {
		return nil, err
	}

	data, err := readAtMost(in, size)
	if err != nil {
		return nil, readError(src, compressed, "data", err)
	}
	if len(data) < size {
		return nil, fmt.Errorf("%w: the header declares %v %s elements (%d bytes) but the input holds only %d; the file is truncated",
			ErrIDXFormat, dims, idxTypeName(typ), size, len(data))
	}
	// Reading on to the end detects trailing bytes and, for gzip input,
	// makes the gzip reader verify its checksum.
	var extra [1]byte
	switch n, err := io.ReadFull(in, extra[:]); {
	case n > 0:
		return nil, fmt.Errorf("%w: data continues after the %d bytes that the header's dimensions %v declare; the header does not match the file",
			ErrIDXFormat, size, dims)
	case err != io.EOF:
		return nil, readError(src, compressed, "end of data", err)
	}
	return &IDX{Type: typ, Dims: dims, Data: data}, nil
}

// readError classifies an error met while reading part of an IDX stream:
// the source's own error is returned as an I/O error; anything else in a
// gzip stream is corrupt compressed data.
func readError(src *sourceReader, compressed bool, part string, err error) error {
	if src.err != nil {
		return fmt.Errorf("read IDX %s: %w", part, src.err)
	}
	if compressed {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the gzip stream ends early, in the %s; the file is truncated", ErrIDXFormat, part)
		}
		return fmt.Errorf("%w: corrupt gzip stream in the %s: %w", ErrIDXFormat, part, err)
	}
	return fmt.Errorf("read IDX %s: %w", part, err)
}

// readAtMost reads up to n bytes from r, stopping early at EOF. Its buffer
// starts small and doubles as data arrives, so a large n that the input
// does not back costs no large allocation.
func readAtMost(r io.Reader, n int) ([]byte, error) {
	const initial = 1 << 20
	buf := make([]byte, 0, min(n, initial))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), n-len(buf)))
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// WriteIDX writes x to w in the IDX format, uncompressed. It checks that
// x is well formed first (a known type, 1 to 255 dimensions each below
// 2^32, and len(Data) equal to what Dims and Type declare) and writes
// nothing otherwise. Wrap w in a gzip.Writer for a .gz file.
func WriteIDX(w io.Writer, x *IDX) error {
	if x == nil {
		return fmt.Errorf("write IDX: %w: nil IDX", ErrIDXFormat)
	}
	size, err := idxDataSize(x.Type, x.Dims)
	if err != nil {
		return fmt.Errorf("write IDX: %w", err)
	}
	if len(x.Data) != size {
		return fmt.Errorf("write IDX: %w: dimensions %v of %s declare %d bytes of data but Data holds %d",
			ErrIDXFormat, x.Dims, idxTypeName(x.Type), size, len(x.Data))
	}
	head := make([]byte, 4+4*len(x.Dims))
	head[2], head[3] = x.Type, byte(len(x.Dims))
	for i, d := range x.Dims {
		binary.BigEndian.PutUint32(head[4+4*i:], uint32(d))
	}
	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("write IDX header: %w", err)
	}
	if _, err := w.Write(x.Data); err != nil {
		return fmt.Errorf("write IDX data: %w", err)
	}
	return nil
}
