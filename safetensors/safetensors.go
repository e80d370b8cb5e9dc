package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/internal/fileio"
)

// MaxHeaderSize is the largest JSON header Read accepts, in bytes. The
// reference implementation refuses headers over 100 MB; this limit is a
// little higher so that every file it writes can be read back.
const MaxHeaderSize = 100 << 20

// metadataKey is the header entry that holds the free-form metadata.
const metadataKey = "__metadata__"

// ErrInvalid is wrapped by every error that reports a malformed file or an
// invalid File or Tensor, as opposed to an I/O error.
var ErrInvalid = errors.New("invalid data")

// Tensor is one named array of a file: its element type, its shape
// (row-major, outermost dimension first; empty for a scalar) and its
// elements as little-endian bytes.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// File is the content of a safetensors file.
type File struct {
	// Tensors maps names (PyTorch state-dict keys such as "fc1.weight")
	// to tensors.
	Tensors map[string]Tensor
	// Metadata is the free-form "__metadata__" header entry. PyTorch's
	// save_file writes {"format": "pt"}.
	Metadata map[string]string
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Numel is the number of elements of t's shape, or an error if a
// dimension is negative or the product overflows.
func (t Tensor) Numel() (int, error) {
	return numel(t.Shape)
}

// Validate checks that t has a known element type, a non-negative shape,
// and exactly as many data bytes as the shape needs.
func (t Tensor) Validate() error {
	if !t.DType.Valid() {
		return fmt.Errorf("%w: unknown dtype %q", ErrInvalid, t.DType)
	}
	n, err := t.byteLen()
	if err != nil {
		return err
	}
	if n != len(t.Data) {
		return fmt.Errorf("%w: shape %v of %s needs %d bytes, the tensor holds %d", ErrInvalid, t.Shape, t.DType, n, len(t.Data))
	}
	return nil
}

// byteLen is the number of bytes t's shape and type need.
func (t Tensor) byteLen() (int, error) {
	n, err := numel(t.Shape)
	if err != nil {
		return 0, err
	}
	size := t.DType.Size()
	if size > 0 && n > math.MaxInt/size {
		return 0, fmt.Errorf("%w: shape %v of %s is too large", ErrInvalid, t.Shape, t.DType)
	}
	return n * size, nil
}

func numel(shape []int) (int, error) {
	n := 1
	zero := false
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: shape %v has a negative dimension", ErrInvalid, shape)
		}
		if d == 0 {
			zero = true
		}
	}
	if zero {
		return 0, nil
	}
	for _, d := range shape {
		if n > math.MaxInt/d {
			return 0, fmt.Errorf("%w: shape %v is too large", ErrInvalid, shape)
		}
		n *= d
	}
	return n, nil
}

// ReadFile reads and validates the safetensors file at path. See Read.
func ReadFile(path string) (*File, error) {
	fh, size, err := fileio.OpenSized(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	// The size comes from the file system, not from the file's content,
	// so buffers can be allocated at once.
	f, err := read(bufio.NewReaderSize(fh, 1<<16), size, true)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return f, nil
}

// Read reads a safetensors file of size bytes from r, and checks all of
// it: the header length (at most MaxHeaderSize and within size), that the
// header is a UTF-8 JSON object whose entries are tensors with a known
// dtype, a non-negative shape and two data offsets (plus an optional
// "__metadata__" object of strings), that each tensor's offsets span
// exactly the bytes its shape and dtype need, and that the tensors cover
// the data buffer exactly: no overlap, no gap, nothing after the last.
//
// Read consumes exactly size bytes of r. It allocates memory in
// proportion to the bytes r actually delivers, so a wrong size or a
// truncated stream costs no more than the data read. Every tensor's Data
// is a slice of one shared buffer, capped so that appending to one does
// not overwrite another.
//
// Malformed input yields an error wrapping ErrInvalid; a stream that ends
// before size bytes yields one wrapping io.ErrUnexpectedEOF.
func Read(r io.Reader, size int64) (*File, error) {
	f, err := read(r, size, false)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

// info is a header entry describing one tensor.
type info struct {
	name   string
	dtype  DType
	shape  []int
	begin  int64
	end    int64
	nbytes int64
}

func read(r io.Reader, size int64, trusted bool) (*File, error) {
	infos, meta, n, err := readHeader(r, size, trusted)
	if err != nil {
		return nil, err
	}
	bufLen := size - 8 - n
	data, err := readN(r, bufLen, trusted)
	if err != nil {
		return nil, truncated(err, 8+n, size)
	}
	f := &File{Tensors: make(map[string]Tensor, len(infos)), Metadata: meta}
	for _, t := range infos {
		f.Tensors[t.name] = Tensor{DType: t.dtype, Shape: t.shape, Data: data[t.begin:t.end:t.end]}
	}
	return f, nil
}

// readHeader reads the header length and the header of a size-byte file
// and checks the tensors' layout against the data buffer's size, which
// it does not read. It returns the header's length too.
func readHeader(r io.Reader, size int64, trusted bool) ([]info, map[string]string, int64, error) {
	if size < 8 {
		return nil, nil, 0, fmt.Errorf("%w: %d bytes is too short for the 8-byte header length", ErrInvalid, max(size, 0))
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, nil, 0, truncated(err, 0, size)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	switch {
	case n > MaxHeaderSize:
		return nil, nil, 0, fmt.Errorf("%w: header length %d exceeds the limit of %d bytes", ErrInvalid, n, MaxHeaderSize)
	case n > uint64(size-8):
		return nil, nil, 0, fmt.Errorf("%w: header length %d exceeds the %d bytes that follow it (truncated file?)", ErrInvalid, n, size-8)
	case n < 2:
		return nil, nil, 0, fmt.Errorf("%w: header length %d is too short for a JSON object", ErrInvalid, n)
	}
	hdr, err := readN(r, int64(n), trusted)
	if err != nil {
		return nil, nil, 0, truncated(err, 8, size)
	}
	infos, meta, err := parseHeader(hdr)
	if err != nil {
		return nil, nil, 0, err
	}
	if err := checkLayout(infos, size-8-int64(n)); err != nil {
		return nil, nil, 0, err
	}
	return infos, meta, int64(n), nil
}

// TensorInfo is a tensor's entry in a file's header.
type TensorInfo struct {
	DType DType
	Shape []int
}

// Header is what a file's header says, without the tensors' data.
type Header struct {
	Tensors  map[string]TensorInfo
	Metadata map[string]string
}

// Names returns the tensor names in sorted order.
func (h *Header) Names() []string {
	names := make([]string, 0, len(h.Tensors))
	for n := range h.Tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ReadHeaderFile reads the header of the safetensors file at path, and
// checks it as ReadFile does, against the file's size, without reading
// the tensors' data: a quick look at a large checkpoint.
func ReadHeaderFile(path string) (*Header, error) {
	fh, size, err := fileio.OpenSized(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	infos, meta, _, err := readHeader(bufio.NewReader(fh), size, false)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	h := &Header{Tensors: make(map[string]TensorInfo, len(infos)), Metadata: meta}
	for _, t := range infos {
		h.Tensors[t.name] = TensorInfo{DType: t.dtype, Shape: t.shape}
	}
	return h, nil
}

// truncated describes a read error at offset off of a size-byte file.
func truncated(err error, off, size int64) error {
	var short *shortRead
	if errors.As(err, &short) {
		off += short.n
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("data ends at byte %d of the %d expected: %w", off, size, io.ErrUnexpectedEOF)
	}
	return err
}

// shortRead records how many bytes readN got before an error.
type shortRead struct {
	n   int64
	err error
}

func (e *shortRead) Error() string { return e.err.Error() }
func (e *shortRead) Unwrap() error { return e.err }

// readChunk bounds what readN allocates ahead of the data it has read.
const readChunk = 16 << 20

// readN reads exactly n bytes. Unless trusted, it grows its buffer as data
// arrives rather than allocating n bytes up front.
func readN(r io.Reader, n int64, trusted bool) ([]byte, error) {
	if n > math.MaxInt {
		return nil, fmt.Errorf("%w: %d bytes do not fit in memory", ErrInvalid, n)
	}
	if trusted || n <= readChunk {
		b := make([]byte, n)
		if k, err := io.ReadFull(r, b); err != nil {
			return nil, &shortRead{int64(k), err}
		}
		return b, nil
	}
	b := make([]byte, 0, readChunk)
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(n, 2*int64(cap(b))))
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(r, b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err != nil {
			return nil, &shortRead{int64(len(b)), err}
		}
	}
	return b, nil
}

// parseHeader decodes the JSON header. It rejects what encoding/json would
// silently accept: invalid UTF-8, duplicate names, missing fields, and
// anything but white space after the object.
func parseHeader(hdr []byte) ([]info, map[string]string, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, fmt.Errorf("%w: header is not valid UTF-8", ErrInvalid)
	}
	if hdr[0] != '{' {
		return nil, nil, fmt.Errorf("%w: header does not start with '{'", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	bad := func(err error) error {
		return fmt.Errorf("%w: header is not a valid JSON object: %w", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != nil { // '{', checked above
		return nil, nil, bad(err)
	}
	var infos []info
	meta := map[string]string{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, bad(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, bad(fmt.Errorf("unexpected %v", tok))
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("%w: header names %q twice", ErrInvalid, name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, bad(err)
		}
		if name == metadataKey {
			if isNull(raw) {
				continue
			}
			if err := json.Unmarshal(raw, &meta); err != nil {
				return nil, nil, fmt.Errorf("%w: %s must map strings to strings: %w", ErrInvalid, metadataKey, err)
			}
			continue
		}
		t, err := parseInfo(name, raw)
		if err != nil {
			return nil, nil, err
		}
		infos = append(infos, t)
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, nil, bad(err)
	}
	if rest := bytes.TrimLeft(hdr[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, nil, fmt.Errorf("%w: header has %d bytes of non-space data after its JSON object", ErrInvalid, len(rest))
	}
	return infos, meta, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// parseInfo decodes one tensor entry and checks its shape against its
// offsets.
func parseInfo(name string, raw json.RawMessage) (info, error) {
	t := info{name: name}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: tensor %q: %s", ErrInvalid, name, fmt.Sprintf(format, args...))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return t, bad("entry is not a JSON object")
	}
	// Unknown fields are ignored, as the reference implementation does.
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if v, ok := fields[k]; !ok || isNull(v) {
			return t, bad("no %q field", k)
		}
	}
	var dtype string
	if err := json.Unmarshal(fields["dtype"], &dtype); err != nil {
		return t, bad("dtype is not a string")
	}
	t.dtype = DType(dtype)
	if !t.dtype.Valid() {
		return t, bad("unknown dtype %q", dtype)
	}
	var shape []int64
	if err := json.Unmarshal(fields["shape"], &shape); err != nil {
		return t, bad("shape is not a list of integers: %s", compact(fields["shape"]))
	}
	t.shape = make([]int, len(shape))
	for i, d := range shape {
		if d < 0 || d > math.MaxInt {
			return t, bad("shape %v has an invalid dimension", shape)
		}
		t.shape[i] = int(d)
	}
	var offs []uint64
	if err := json.Unmarshal(fields["data_offsets"], &offs); err != nil || len(offs) != 2 {
		return t, bad("data_offsets must be two non-negative integers, got %s", compact(fields["data_offsets"]))
	}
	if offs[0] > math.MaxInt64 || offs[1] > math.MaxInt64 {
		return t, bad("data_offsets %v are too large", offs)
	}
	t.begin, t.end = int64(offs[0]), int64(offs[1])
	if t.end < t.begin {
		return t, bad("data_offsets [%d, %d] end before they begin", t.begin, t.end)
	}
	n, err := Tensor{DType: t.dtype, Shape: t.shape}.byteLen()
	if err != nil {
		return t, fmt.Errorf("tensor %q: %w", name, err)
	}
	t.nbytes = int64(n)
	if t.nbytes != t.end-t.begin {
		return t, bad("shape %v of %s needs %d bytes, data_offsets [%d, %d] span %d", t.shape, t.dtype, t.nbytes, t.begin, t.end, t.end-t.begin)
	}
	return t, nil
}

// compact shortens a raw JSON value for an error message.
func compact(raw json.RawMessage) string {
	const max = 64
	if len(raw) > max {
		return string(raw[:max]) + "..."
	}
	return string(raw)
}

// checkLayout sorts infos by offset and checks that they tile the
// bufLen-byte data buffer.
func checkLayout(infos []info, bufLen int64) error {
	slices.SortFunc(infos, func(a, b info) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.name, b.name))
	})
	var pos int64
	prev := ""
	for _, t := range infos {
		if t.end > bufLen {
			return fmt.Errorf("%w: tensor %q ends at byte %d of a %d-byte data buffer (truncated file?)", ErrInvalid, t.name, t.end, bufLen)
		}
		switch {
		case t.begin < pos:
			return fmt.Errorf("%w: tensor %q at bytes [%d, %d] overlaps tensor %q, which ends at %d", ErrInvalid, t.name, t.begin, t.end, prev, pos)
		case t.begin > pos:
			return fmt.Errorf("%w: %d unused bytes in the data buffer before tensor %q at byte %d", ErrInvalid, t.begin-pos, t.name, t.begin)
		}
		pos, prev = t.end, t.name
	}
	if pos != bufLen {
		return fmt.Errorf("%w: tensors cover %d bytes of the %d-byte data buffer; %d bytes of trailing data", ErrInvalid, pos, bufLen, bufLen-pos)
	}
	return nil
}

// WriteFile atomically writes f to path: readers see the old file or the
// complete new one, never a partial file. See Write.
func WriteFile(path string, f *File) error {
	_, err := WriteFileSHA256(path, f)
	return err
}

// WriteFileSHA256 is WriteFile that also returns the hex SHA-256 of the
// bytes written, computed while writing, for files that record the hash
// of their weights (distill's model and INT8 model specs).
func WriteFileSHA256(path string, f *File) (string, error) {
	if err := validate(f); err != nil {
		return "", fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	h := sha256.New()
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		h.Reset() // in case of a retry
		bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
		if err := write(bw, f); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return "", fmt.Errorf("safetensors: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Write validates f and writes it in the safetensors format. The output
// is deterministic and laid out as the reference implementation (behind
// PyTorch's safetensors.torch.save_file) does: tensors are ordered by
// decreasing dtype alignment, then by name, so that all tensors of one
// dtype (a whole PyTorch model in float32, say) appear in name order and
// every tensor starts at a multiple of its element size; metadata keys
// are sorted; the header is padded with spaces to a multiple of 8 bytes.
func Write(w io.Writer, f *File) error {
	if err := validate(f); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := write(w, f); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// validate checks what write needs: valid tensors and UTF-8 names.
func validate(f *File) error {
	if f == nil {
		return fmt.Errorf("%w: nil File", ErrInvalid)
	}
	for name, t := range f.Tensors {
		if name == metadataKey {
			return fmt.Errorf("%w: a tensor cannot be named %q", ErrInvalid, metadataKey)
		}
		if !utf8.ValidString(name) {
			return fmt.Errorf("%w: tensor name %q is not valid UTF-8", ErrInvalid, name)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
	}
	for k, v := range f.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: metadata %q: %q is not valid UTF-8", ErrInvalid, k, v)
		}
	}
	return nil
}

// write writes a validated f.
func write(w io.Writer, f *File) error {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		ra, rb := f.Tensors[a].DType.rank(), f.Tensors[b].DType.rank()
		return cmp.Or(cmp.Compare(rb, ra), cmp.Compare(a, b))
	})

	var h bytes.Buffer
	h.Write(make([]byte, 8)) // header length, filled in below
	h.WriteByte('{')
	if len(f.Metadata) > 0 {
		keys := make([]string, 0, len(f.Metadata))
		for k := range f.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		writeString(&h, metadataKey)
		h.WriteString(":{")
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeString(&h, k)
			h.WriteByte(':')
			writeString(&h, f.Metadata[k])
		}
		h.WriteByte('}')
	}
	var off int
	for i, name := range names {
		t := f.Tensors[name]
		if i > 0 || len(f.Metadata) > 0 {
			h.WriteByte(',')
		}
		writeString(&h, name)
		h.WriteString(`:{"dtype":`)
		writeString(&h, string(t.DType))
		h.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[`)
		h.WriteString(strconv.Itoa(off))
		h.WriteByte(',')
		off += len(t.Data)
		h.WriteString(strconv.Itoa(off))
		h.WriteString("]}")
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	hdr := h.Bytes()
	if len(hdr)-8 > MaxHeaderSize {
		return fmt.Errorf("%w: the header would take %d bytes, over the limit of %d", ErrInvalid, len(hdr)-8, MaxHeaderSize)
	}
	binary.LittleEndian.PutUint64(hdr, uint64(len(hdr)-8))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, name := range names {
		if _, err := w.Write(f.Tensors[name].Data); err != nil {
			return err
		}
	}
	return nil
}

// writeString writes s as a JSON string the way serde_json (and so the
// reference implementation) does: only '"', '\\' and control characters
// are escaped.
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
