package data

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/distill-dev/distill/internal/fileio"
)

// ErrNPYFormat is wrapped by every error ReadNPY returns for malformed or
// unsupported content. Test with errors.Is.
var ErrNPYFormat = errors.New("invalid NPY data")

// maxNPYHeader bounds an NPY header; numpy writes well under 1 KiB.
const maxNPYHeader = 1 << 20

// NPY is an array read from NumPy's .npy format, its values converted
// to float32.
type NPY struct {
	// Dtype is the array's type as numpy describes it, e.g. "<f4", "|u1".
	Dtype string
	// Shape is the array's shape; a 0-d array has none.
	Shape []int
	// Data holds the values in C (row-major) order.
	Data []float32
	// Integer reports whether the dtype is an integer or bool type.
	Integer bool
}

// npyType describes one supported element type.
type npyType struct {
	size    int
	integer bool
	decode  func(b []byte, order binary.ByteOrder) float32
}

var npyTypes = map[string]npyType{
	"b1": {1, true, func(b []byte, _ binary.ByteOrder) float32 { return float32(b[0]) }},
	"u1": {1, true, func(b []byte, _ binary.ByteOrder) float32 { return float32(b[0]) }},
	"i1": {1, true, func(b []byte, _ binary.ByteOrder) float32 { return float32(int8(b[0])) }},
	"u2": {2, true, func(b []byte, o binary.ByteOrder) float32 { return float32(o.Uint16(b)) }},
	"i2": {2, true, func(b []byte, o binary.ByteOrder) float32 { return float32(int16(o.Uint16(b))) }},
	"u4": {4, true, func(b []byte, o binary.ByteOrder) float32 { return float32(o.Uint32(b)) }},
	"i4": {4, true, func(b []byte, o binary.ByteOrder) float32 { return float32(int32(o.Uint32(b))) }},
	"u8": {8, true, func(b []byte, o binary.ByteOrder) float32 { return float32(o.Uint64(b)) }},
	"i8": {8, true, func(b []byte, o binary.ByteOrder) float32 { return float32(int64(o.Uint64(b))) }},
	"f2": {2, false, func(b []byte, o binary.ByteOrder) float32 { return halfToFloat(o.Uint16(b)) }},
	"f4": {4, false, func(b []byte, o binary.ByteOrder) float32 { return math.Float32frombits(o.Uint32(b)) }},
	"f8": {8, false, func(b []byte, o binary.ByteOrder) float32 { return float32(math.Float64frombits(o.Uint64(b))) }},
}

// ReadNPY reads one array in NumPy's .npy format (versions 1.0, 2.0 and
// 3.0) of a numeric or bool dtype in either byte order, in C order. Its
// values become float32 (integers beyond 2^24 lose precision; labels
// never get there). Object arrays (pickles), structured dtypes, strings
// and Fortran-order arrays are refused with an error saying how to save
// the array instead. Bytes after the array are an error: the file is
// not what its header says.
func ReadNPY(r io.Reader) (*NPY, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var pre [8]byte
	if n, err := io.ReadFull(br, pre[:]); err != nil {
		return nil, npyEOF(err, fmt.Sprintf("the input ends after %d bytes, inside the 8-byte preamble; the file is empty or truncated", n))
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("%w: it does not start with \\x93NUMPY (is this a .npy file? save arrays with numpy.save)", ErrNPYFormat)
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, npyEOF(err, "the input ends inside the header length; the file is truncated")
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, npyEOF(err, "the input ends inside the header length; the file is truncated")
		}
		if v := binary.LittleEndian.Uint32(b[:]); v > maxNPYHeader {
			return nil, fmt.Errorf("%w: the header claims %d bytes, more than the %d accepted; the file is corrupt", ErrNPYFormat, v, maxNPYHeader)
		} else {
			hlen = int(v)
		}
	default:
		return nil, fmt.Errorf("%w: format version %d.%d; versions 1.0, 2.0 and 3.0 are supported", ErrNPYFormat, pre[6], pre[7])
	}
	head := make([]byte, hlen)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, npyEOF(err, fmt.Sprintf("the input ends inside the %d-byte header; the file is truncated", hlen))
	}
	descr, fortran, shape, err := parseNPYHeader(string(head))
	if err != nil {
		return nil, err
	}
	if fortran {
		return nil, fmt.Errorf("%w: the array is in Fortran order; save numpy.ascontiguousarray(a) instead", ErrNPYFormat)
	}
	if len(descr) != 3 || !strings.ContainsRune("<>|=", rune(descr[0])) {
		return nil, npyDtypeError(descr)
	}
	typ, ok := npyTypes[descr[1:]]
	if !ok {
		return nil, npyDtypeError(descr)
	}
	var order binary.ByteOrder = binary.LittleEndian
	if descr[0] == '>' {
		order = binary.BigEndian
	}
	n := 1
	for _, d := range shape {
		if d != 0 && n > maxElements/d {
			return nil, fmt.Errorf("%w: shape %v has more than %d elements; the file is corrupt or too large", ErrNPYFormat, shape, maxElements)
		}
		n *= d
	}
	a := &NPY{Dtype: descr, Shape: shape, Integer: typ.integer}
	// Read in chunks so that a header claiming a huge array on a short
	// input fails before allocating it all.
	const chunk = 1 << 20
	a.Data = make([]float32, 0, min(n, chunk))
	buf := make([]byte, typ.size*min(n, chunk))
	for done := 0; done < n; {
		k := min(n-done, chunk)
		b := buf[:k*typ.size]
		if got, err := io.ReadFull(br, b); err != nil {
			return nil, npyEOF(err, fmt.Sprintf("the header declares %v %s values (%d bytes) but the data ends after %d; the file is truncated",
				shape, descr, n*typ.size, done*typ.size+got))
		}
		for i := 0; i < k; i++ {
			a.Data = append(a.Data, typ.decode(b[i*typ.size:], order))
		}
		done += k
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, fmt.Errorf("%w: bytes follow the %v %s array its header declares; the file is corrupt", ErrNPYFormat, shape, descr)
	} else if err != io.EOF {
		return nil, err
	}
	return a, nil
}

func npyEOF(err error, msg string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %s", ErrNPYFormat, msg)
	}
	return err
}

func npyDtypeError(descr string) error {
	return fmt.Errorf("%w: dtype %q is not supported; use a numeric or bool dtype such as float32 ('<f4'), uint8 ('|u1') or int64 ('<i8'), e.g. a.astype(numpy.float32)",
		ErrNPYFormat, descr)
}

// parseNPYHeader parses the Python dict literal of an NPY header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
func parseNPYHeader(h string) (descr string, fortran bool, shape []int, err error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: header %q: %s", ErrNPYFormat, strings.TrimSpace(h), why)
	}
	s := strings.TrimSpace(h)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return "", false, nil, bad("not a dictionary")
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	seen := map[string]bool{}
	for s != "" {
		key, rest, ok := npyString(s)
		if !ok {
			return "", false, nil, bad("expected a quoted key")
		}
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, ":") {
			return "", false, nil, bad("expected ':' after '" + key + "'")
		}
		rest = strings.TrimSpace(rest[1:])
		if seen[key] {
			return "", false, nil, bad("key '" + key + "' appears twice")
		}
		seen[key] = true
		switch key {
		case "descr":
			if descr, rest, ok = npyString(rest); !ok {
				return "", false, nil, npyDtypeError(firstToken(rest))
			}
		case "fortran_order":
			switch {
			case strings.HasPrefix(rest, "False"):
				fortran, rest = false, rest[5:]
			case strings.HasPrefix(rest, "True"):
				fortran, rest = true, rest[4:]
			default:
				return "", false, nil, bad("fortran_order must be True or False")
			}
		case "shape":
			if !strings.HasPrefix(rest, "(") {
				return "", false, nil, bad("shape must be a tuple")
			}
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				return "", false, nil, bad("shape tuple is not closed")
			}
			shape = []int{}
			for _, f := range strings.Split(rest[1:end], ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				d, err := strconv.Atoi(strings.TrimSuffix(f, "L"))
				if err != nil || d < 0 {
					return "", false, nil, bad("shape entry " + f + " is not a non-negative integer")
				}
				shape = append(shape, d)
			}
			rest = rest[end+1:]
		default:
			return "", false, nil, bad("unexpected key '" + key + "'")
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, ",") {
			rest = strings.TrimSpace(rest[1:])
		} else if rest != "" {
			return "", false, nil, bad("expected ',' between entries")
		}
		s = rest
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return "", false, nil, bad("needs the keys 'descr', 'fortran_order' and 'shape'")
	}
	return descr, fortran, shape, nil
}

// npyString reads a Python string literal in single or double quotes
// (without escapes, which NPY headers of supported dtypes never hold).
func npyString(s string) (str, rest string, ok bool) {
	if s == "" || s[0] != '\'' && s[0] != '"' {
		return "", s, false
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return "", s, false
	}
	return s[1 : 1+end], s[2+end:], true
}

func firstToken(s string) string {
	if i := strings.IndexAny(s, ",}"); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

// halfToFloat converts an IEEE 754 half-precision value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0:
		f := float32(frac) / 1024 / 16384 // subnormal: frac × 2^-24
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// readNPYFile reads one .npy file.
func readNPYFile(path string) (*NPY, error) {
	f, err := fileio.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := ReadNPY(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// readNPZ reads the named arrays from a .npz file (a zip of .npy files,
// as numpy.savez and savez_compressed write).
func readNPZ(path string, names ...string) ([]*NPY, error) {
	f, size, err := fileio.OpenSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s is not a readable .npz (zip) file: %w; save it with numpy.savez", path, err)
	}
	var have []string
	byName := map[string]*zip.File{}
	for _, zf := range zr.File {
		name := strings.TrimSuffix(zf.Name, ".npy")
		byName[name] = zf
		have = append(have, name)
	}
	out := make([]*NPY, len(names))
	for i, name := range names {
		zf, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("%s has no array %q (it has %s); name the arrays with data.x and data.y, or save them as numpy.savez(file, x=..., y=...)",
				path, name, quoteList(have))
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: array %q: %w", path, name, err)
		}
		a, err := ReadNPY(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: array %q: %w", path, name, err)
		}
		out[i] = a
	}
	return out, nil
}

func quoteList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	var b bytes.Buffer
	for i, v := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(v))
	}
	return b.String()
}
