package transfer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
)

// formatName is the manifest's "format" field and the first line of the
// key's canonical encoding. A change to the on-disk format or to what
// the stored values mean must change it.
const formatName = "distill.transfer/v1"

// File layout constants.
const (
	manifestName    = "manifest.json"
	maxManifestSize = 64 << 20
	shardMagic      = "DSTLXFER"
	shardVersion    = 1
	headerSize      = 40
	footerSize      = sha256.Size
	logitsColumn    = "logits"

	// DefaultShardBytes bounds a shard file's size when BuildSpec leaves
	// ShardBytes at 0.
	DefaultShardBytes = 64 << 20
)

// Dtype codes in shard headers.
const (
	codeFloat32 uint32 = 1
	codeFloat16 uint32 = 2
)

// ErrCorrupt is wrapped by every error about a transfer set's files that
// do not hold what they should: a bad checksum, header or manifest.
var ErrCorrupt = errors.New("corrupt transfer set")

// corrupt returns an error wrapping ErrCorrupt.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Manifest is the content of a transfer set's manifest.json. Its
// presence marks the set complete: Build writes it last.
type Manifest struct {
	// Format is "distill.transfer/v1".
	Format string `json:"format"`
	// Key is Key(Description), also the set's directory name.
	Key string `json:"key"`
	// Description is everything that determined the stored values.
	Description Description `json:"description"`
	// Rows is the number of examples, N × (K+1). Row r holds copy r / N
	// of base example r % N.
	Rows int `json:"rows"`
	// Width is the number of values in a row.
	Width int `json:"width"`
	// Columns lays out a row: every teacher's logits in teacher order,
	// then every teacher's features in teacher order.
	Columns []Column `json:"columns"`
	// Shards lists the shard files in row order.
	Shards []ShardInfo `json:"shards"`
}

// Column is a run of values within a row.
type Column struct {
	Teacher int    `json:"teacher"`
	Name    string `json:"name"` // "logits" or a feature's name
	Shape   []int  `json:"shape"`
	Offset  int    `json:"offset"` // index of the first value in the row
	Size    int    `json:"size"`
}

// ShardInfo describes one shard file.
type ShardInfo struct {
	File   string `json:"file"`  // shard-00000.bin, …
	First  int    `json:"first"` // the first row it holds
	Rows   int    `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"` // of the whole file, as sha256sum prints it
}

// shardName returns the file name of shard s.
func shardName(s int) string { return fmt.Sprintf("shard-%05d.bin", s) }

// elemSize returns the bytes per value of a dtype.
func elemSize(dtype string) int {
	if dtype == Float16 {
		return 2
	}
	return 4
}

// dtypeCode returns a dtype's header code.
func dtypeCode(dtype string) uint32 {
	if dtype == Float16 {
		return codeFloat16
	}
	return codeFloat32
}

// layout returns the columns of a row and its width. d must be valid.
func layout(d Description) ([]Column, int) {
	var cols []Column
	off := 0
	for t := range d.Teachers {
		cols = append(cols, Column{Teacher: t, Name: logitsColumn, Shape: []int{d.Classes}, Offset: off, Size: d.Classes})
		off += d.Classes
	}
	for t, ti := range d.Teachers {
		for _, f := range ti.Features {
			n, _ := shapeSize(f.Shape)
			cols = append(cols, Column{Teacher: t, Name: f.Name, Shape: append([]int(nil), f.Shape...), Offset: off, Size: n})
			off += n
		}
	}
	return cols, off
}

// shardBytes returns the size of a shard file of rows rows.
func shardBytes(rows, width, esize int) int64 {
	return headerSize + int64(rows)*int64(width)*int64(esize) + footerSize
}

// parseManifest decodes and checks a manifest: known format, valid
// description, a key that matches it, the layout it implies, and shards
// that cover the rows contiguously with plausible sizes and names. It
// never panics, whatever b holds.
func parseManifest(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, corrupt("manifest is not valid JSON of the expected fields: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, corrupt("manifest has data after its JSON object")
	}
	if m.Format != formatName {
		return nil, corrupt("manifest format is %q; this version of distill reads %q", m.Format, formatName)
	}
	d := m.Description
	if err := d.Validate(); err != nil {
		return nil, corrupt("manifest description: %v", err)
	}
	if k := Key(d); m.Key != k {
		return nil, corrupt("manifest key %s does not match its description (whose key is %s)", m.Key, k)
	}
	if m.Rows != d.Rows() {
		return nil, corrupt("manifest says %d rows, but %d examples × %d copies make %d", m.Rows, d.Source.Examples, d.Copies+1, d.Rows())
	}
	cols, width := layout(d)
	if m.Width != width || !reflect.DeepEqual(m.Columns, cols) {
		return nil, corrupt("manifest's row layout (width %d, %d columns) does not match its description (width %d, %d columns)", m.Width, len(m.Columns), width, len(cols))
	}
	if len(m.Shards) == 0 || len(m.Shards) > m.Rows {
		return nil, corrupt("manifest lists %d shards for %d rows", len(m.Shards), m.Rows)
	}
	esize := elemSize(d.Dtype)
	next := 0
	for s, sh := range m.Shards {
		if sh.File != shardName(s) {
			return nil, corrupt("shard %d is named %q, want %q", s, sh.File, shardName(s))
		}
		if sh.First != next || sh.Rows < 1 || sh.Rows > m.Rows-next {
			return nil, corrupt("%s holds rows [%d, %d); the shards must cover [0, %d) in order", sh.File, sh.First, sh.First+sh.Rows, m.Rows)
		}
		if want := shardBytes(sh.Rows, width, esize); sh.Bytes != want {
			return nil, corrupt("%s is listed as %d bytes; %d rows of %d values make %d", sh.File, sh.Bytes, sh.Rows, width, want)
		}
		if !isHash(sh.SHA256) {
			return nil, corrupt("%s: sha256 %q is not 64 lower-case hex digits", sh.File, sh.SHA256)
		}
		next += sh.Rows
	}
	if next != m.Rows {
		return nil, corrupt("the shards hold %d rows, the manifest says %d", next, m.Rows)
	}
	return &m, nil
}

// marshalManifest encodes m for writing.
func marshalManifest(m *Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// shardHeader is the fixed-size start of a shard file:
//
//	offset size
//	0      8    magic "DSTLXFER"
//	8      4    version (1), uint32 little-endian
//	12     4    dtype: 1 = float32, 2 = float16
//	16     8    first row, uint64
//	24     8    rows, uint64
//	32     8    width (values per row), uint64
//
// Then rows × width values, little-endian, row-major, and finally the
// SHA-256 of everything before it (32 bytes).
type shardHeader struct {
	dtype              uint32
	first, rows, width uint64
}

func (h shardHeader) encode() []byte {
	b := make([]byte, headerSize)
	copy(b, shardMagic)
	binary.LittleEndian.PutUint32(b[8:], shardVersion)
	binary.LittleEndian.PutUint32(b[12:], h.dtype)
	binary.LittleEndian.PutUint64(b[16:], h.first)
	binary.LittleEndian.PutUint64(b[24:], h.rows)
	binary.LittleEndian.PutUint64(b[32:], h.width)
	return b
}

// decodeHeader parses a header and checks it against the file's size.
func decodeHeader(b []byte, size int64) (shardHeader, int, error) {
	if len(b) < headerSize || string(b[:8]) != shardMagic {
		return shardHeader{}, 0, corrupt("not a transfer-set shard (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != shardVersion {
		return shardHeader{}, 0, corrupt("shard format version %d; this version of distill reads %d", v, shardVersion)
	}
	h := shardHeader{
		dtype: binary.LittleEndian.Uint32(b[12:]),
		first: binary.LittleEndian.Uint64(b[16:]),
		rows:  binary.LittleEndian.Uint64(b[24:]),
		width: binary.LittleEndian.Uint64(b[32:]),
	}
	var esize int
	switch h.dtype {
	case codeFloat32:
		esize = 4
	case codeFloat16:
		esize = 2
	default:
		return shardHeader{}, 0, corrupt("unknown dtype code %d", h.dtype)
	}
	if h.rows < 1 || h.rows > maxRows || h.width < 1 || h.width > maxWidth || h.first > maxRows {
		return shardHeader{}, 0, corrupt("implausible header: first row %d, %d rows of %d values", h.first, h.rows, h.width)
	}
	// Compare by division: rows·width·esize may not fit in 64 bits.
	rowBytes := h.width * uint64(esize) // ≤ 2^30
	if size < headerSize+footerSize || uint64(size-headerSize-footerSize)%rowBytes != 0 ||
		uint64(size-headerSize-footerSize)/rowBytes != h.rows {
		return shardHeader{}, 0, corrupt("file is %d bytes, which does not fit its header's %d rows of %d values", size, h.rows, h.width)
	}
	return h, esize, nil
}

// readShard reads a shard of size bytes from r. It checks the header
// (against want, when not nil), the size and the trailing checksum, and
// passes each row's raw bytes to row (which must not keep them), if row
// is not nil. It returns the header and the SHA-256 of the whole file.
// Memory use is bounded by one row, whatever the file holds.
func readShard(r io.Reader, size int64, want *shardHeader, row func(k int, b []byte) error) (shardHeader, [32]byte, error) {
	var sum [32]byte
	body := sha256.New() // header and data
	file := sha256.New() // everything
	br := bufio.NewReaderSize(r, 1<<20)
	tee := io.TeeReader(br, io.MultiWriter(body, file))
	hb := make([]byte, headerSize)
	if _, err := io.ReadFull(tee, hb); err != nil {
		return shardHeader{}, sum, shortRead(err)
	}
	h, esize, err := decodeHeader(hb, size)
	if err != nil {
		return shardHeader{}, sum, err
	}
	if want != nil && h != *want {
		return h, sum, corrupt("header says rows [%d, %d) of %d values (dtype %d); the set needs rows [%d, %d) of %d values (dtype %d)",
			h.first, h.first+h.rows, h.width, h.dtype, want.first, want.first+want.rows, want.width, want.dtype)
	}
	buf := make([]byte, int(h.width)*esize)
	for k := range int(h.rows) {
		if _, err := io.ReadFull(tee, buf); err != nil {
			return h, sum, shortRead(err)
		}
		if row != nil {
			if err := row(k, buf); err != nil {
				return h, sum, err
			}
		}
	}
	var foot [footerSize]byte
	if _, err := io.ReadFull(br, foot[:]); err != nil {
		return h, sum, shortRead(err)
	}
	file.Write(foot[:])
	if !bytes.Equal(body.Sum(nil), foot[:]) {
		return h, sum, corrupt("checksum mismatch: the data does not match the SHA-256 stored at the end of the file")
	}
	if n, _ := br.Read(make([]byte, 1)); n != 0 {
		return h, sum, corrupt("data after the checksum")
	}
	copy(sum[:], file.Sum(nil))
	return h, sum, nil
}

// shortRead turns an unexpected end of file into a corruption error.
func shortRead(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("file is truncated")
	}
	return err
}

// hexSum formats a checksum.
func hexSum(s [32]byte) string { return hex.EncodeToString(s[:]) }

// encodeValues appends vals to dst in dtype, little-endian. It fails on a
// value that float16 cannot hold.
func encodeValues(dst []byte, vals []float32, dtype string) ([]byte, error) {
	if dtype == Float16 {
		for _, v := range vals {
			h, ok := f32ToF16(v)
			if !ok {
				return dst, fmt.Errorf("value %v does not fit float16 (|v| > 65504); use dtype %s", v, Float32)
			}
			dst = binary.LittleEndian.AppendUint16(dst, h)
		}
		return dst, nil
	}
	for _, v := range vals {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	return dst, nil
}

// decodeValues decodes len(out) values of esize bytes from b.
func decodeValues(out []float32, b []byte, esize int) {
	if esize == 2 {
		for i := range out {
			out[i] = f16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return
	}
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// f32ToF16 rounds f to the nearest IEEE 754 half-precision value (ties to
// even). ok is false when a finite f rounds beyond the largest half
// (65504). NaN becomes a quiet NaN and ±Inf stays ±Inf.
func f32ToF16(f float32) (h uint16, ok bool) {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	a := math.Abs(float64(f))
	switch {
	case math.IsNaN(a):
		return sign | 0x7e00, true
	case math.IsInf(a, 0):
		return sign | 0x7c00, true
	case a < 0x1p-14:
		// Subnormal (or zero): a multiple of 2^-24. Exact in float64, so
		// RoundToEven rounds correctly; 1024 carries into the exponent,
		// which is the right encoding of 2^-14.
		return sign | uint16(math.RoundToEven(a*0x1p24)), true
	}
	frac, exp := math.Frexp(a)         // a = frac·2^exp, frac in [0.5, 1)
	m := math.RoundToEven(frac * 2048) // in [1024, 2048]
	e := exp - 1
	if m == 2048 {
		m, e = 1024, e+1
	}
	if e > 15 {
		return sign | 0x7c00, false
	}
	return sign | uint16(e+15)<<10 | (uint16(m) - 1024), true
}

// f16ToF32 converts a half-precision value to float32 exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1f
	m := uint32(h & 0x3ff)
	switch e {
	case 0:
		v := float32(m) * 0x1p-24
		if sign != 0 {
			v = -v
		}
		return v
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	}
	return math.Float32frombits(sign | (e-15+127)<<23 | m<<13)
}

// checkKey accepts a key as a directory name: 64 lower-case hex digits.
func checkKey(key string) error {
	if !isHash(key) {
		return fmt.Errorf("transfer: key %q is not 64 lower-case hex digits", strings.TrimSpace(key))
	}
	return nil
}
