package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite the files in testdata")

// build assembles a file by hand, per the format: the header length, the
// header padded with spaces to a multiple of 8 when pad is set, the data.
func build(header string, pad bool, data ...[]byte) []byte {
	if pad {
		header += strings.Repeat(" ", (8-len(header)%8)%8)
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	for _, d := range data {
		b = append(b, d...)
	}
	return b
}

// le encodes float32s as little-endian bytes, independently of F32.
func le(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// pytorchMLP is what safetensors.torch.save_file writes for the state
// dict of a 4→3→2 MLP (nn.Linear layers fc1 and fc2) with
// metadata={"format": "pt"}: the reference writer orders same-dtype
// tensors by name, puts "__metadata__" first, writes compact JSON and
// pads the header with spaces.
func pytorchMLP() (*File, []byte) {
	w1 := []float32{0.5, -0.25, 1, 2, -1, 0, 0.125, 3, 4, -4, 1e-3, 65504}
	b1 := []float32{0.1, 0.2, 0.3}
	w2 := []float32{1, 2, 3, -1, -2, -3}
	b2 := []float32{float32(math.Inf(1)), -0.0}
	f := &File{
		Tensors: map[string]Tensor{
			"fc1.weight": F32([]int{3, 4}, w1),
			"fc1.bias":   F32([]int{3}, b1),
			"fc2.weight": F32([]int{2, 3}, w2),
			"fc2.bias":   F32([]int{2}, b2),
		},
		Metadata: map[string]string{"format": "pt"},
	}
	hdr := `{"__metadata__":{"format":"pt"},` +
		`"fc1.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},` +
		`"fc1.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[12,60]},` +
		`"fc2.bias":{"dtype":"F32","shape":[2],"data_offsets":[60,68]},` +
		`"fc2.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[68,92]}}`
	return f, build(hdr, true, le(b1...), le(w1...), le(b2...), le(w2...))
}

// mixed holds every dtype, a scalar and an empty tensor; the reference
// writer orders them by decreasing alignment, then name.
func mixed() (*File, []byte) {
	f := &File{
		Tensors: map[string]Tensor{
			"a.f64":   F64([]int{2}, []float64{1.5, -2}),
			"b.i64":   I64([]int{}, []int64{-3}),
			"c.f32":   F32([]int{1, 2}, []float32{1, 2}),
			"d.i32":   I32([]int{2}, []int32{-1, 1 << 30}),
			"e.bf16":  BF16([]int{2}, []float32{1, -2}),
			"f.f16":   F16([]int{2}, []float32{1, 0.5}),
			"g.i16":   I16([]int{1}, []int16{-2}),
			"h.i8":    I8([]int{3}, []int8{-128, 0, 127}),
			"i.u8":    U8([]int{2}, []uint8{0, 255}),
			"j.bool":  BOOL([]int{2}, []bool{true, false}),
			"k.empty": F32([]int{0, 3}, nil),
		},
		Metadata: map[string]string{"b": "x\"y\n", "a": "<&>"},
	}
	hdr := `{"__metadata__":{"a":"<&>","b":"x\"y\n"},` +
		`"b.i64":{"dtype":"I64","shape":[],"data_offsets":[0,8]},` +
		`"a.f64":{"dtype":"F64","shape":[2],"data_offsets":[8,24]},` +
		`"c.f32":{"dtype":"F32","shape":[1,2],"data_offsets":[24,32]},` +
		`"k.empty":{"dtype":"F32","shape":[0,3],"data_offsets":[32,32]},` +
		`"d.i32":{"dtype":"I32","shape":[2],"data_offsets":[32,40]},` +
		`"e.bf16":{"dtype":"BF16","shape":[2],"data_offsets":[40,44]},` +
		`"f.f16":{"dtype":"F16","shape":[2],"data_offsets":[44,48]},` +
		`"g.i16":{"dtype":"I16","shape":[1],"data_offsets":[48,50]},` +
		`"h.i8":{"dtype":"I8","shape":[3],"data_offsets":[50,53]},` +
		`"i.u8":{"dtype":"U8","shape":[2],"data_offsets":[53,55]},` +
		`"j.bool":{"dtype":"BOOL","shape":[2],"data_offsets":[55,57]}}`
	data := [][]byte{
		{0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},          // -3
		{0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0}, // 1.5, -2
		le(1, 2),
		{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x40}, // -1, 1<<30
		{0x80, 0x3f, 0x00, 0xc0},                // bf16 1, -2
		{0x00, 0x3c, 0x00, 0x38},                // f16 1, 0.5
		{0xfe, 0xff},                            // -2
		{0x80, 0, 0x7f},
		{0, 0xff},
		{1, 0},
	}
	return f, build(hdr, true, data...)
}

// golden lists the files in testdata, each with the File it holds.
func golden() map[string]struct {
	file  *File
	bytes []byte
} {
	out := map[string]struct {
		file  *File
		bytes []byte
	}{}
	add := func(name string, f *File, b []byte) {
		out[name] = struct {
			file  *File
			bytes []byte
		}{f, b}
	}
	f, b := pytorchMLP()
	add("pytorch_mlp.safetensors", f, b)
	f, b = mixed()
	add("mixed.safetensors", f, b)
	add("empty.safetensors", &File{}, build(`{}`, true))
	add("metadata_only.safetensors", &File{Metadata: map[string]string{"framework": "pt"}},
		build(`{"__metadata__":{"framework":"pt"}}`, true))
	return out
}

// TestGolden checks that Write produces, byte for byte, the files the
// reference implementation writes, that Read decodes them, and that the
// copies in testdata (the fuzz seeds) are current.
func TestGolden(t *testing.T) {
	for name, g := range golden() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, g.file); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), g.bytes) {
				t.Errorf("Write:\n got %q\nwant %q", buf.Bytes(), g.bytes)
			}
			got, err := Read(bytes.NewReader(g.bytes), int64(len(g.bytes)))
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, got, g.file)

			path := filepath.Join("testdata", name)
			if *update {
				if err := WriteFile(path, g.file); err != nil {
					t.Fatal(err)
				}
			}
			disk, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(disk, g.bytes) {
				t.Errorf("%s is stale; run go test -update", path)
			}
			fromDisk, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, fromDisk, g.file)
		})
	}
}

// assertEqual compares files, treating nil and empty maps and shapes alike.
func assertEqual(t *testing.T, got, want *File) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Errorf("got %d tensors %v, want %d %v", len(got.Tensors), got.Names(), len(want.Tensors), want.Names())
	}
	for name, w := range want.Tensors {
		g, ok := got.Tensors[name]
		if !ok {
			t.Errorf("missing tensor %q", name)
			continue
		}
		if g.DType != w.DType || len(g.Shape) != len(w.Shape) || (len(w.Shape) > 0 && !reflect.DeepEqual(g.Shape, w.Shape)) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("tensor %q = %v %v %x, want %v %v %x", name, g.DType, g.Shape, g.Data, w.DType, w.Shape, w.Data)
		}
	}
	if len(got.Metadata) != len(want.Metadata) || (len(want.Metadata) > 0 && !reflect.DeepEqual(got.Metadata, want.Metadata)) {
		t.Errorf("metadata = %v, want %v", got.Metadata, want.Metadata)
	}
}

func TestReadAcceptsReferenceVariants(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
	}{
		// Early writers did not pad the header.
		{"unpadded", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, false, le(1))},
		// JSON white space and key order are free, and so is tensor order.
		{"spaced", build("{ \"b\" : {\"data_offsets\": [4, 8], \"shape\": [1], \"dtype\": \"F32\"},\n\t\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]} }\n", true, le(1, 2))},
		{"null metadata", build(`{"__metadata__":null}`, true)},
		{"unknown fields", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":[1]}}`, true, []byte{7})},
		{"zero-size tensors share an offset", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F64","shape":[2,0],"data_offsets":[0,0]}}`, true)},
		{"raw-only dtypes", build(`{"a":{"dtype":"U64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[8,9]}}`, true, make([]byte, 9))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(tc.file), int64(len(tc.file)))
			if err != nil {
				t.Fatal(err)
			}
			// What Read accepts, Write can write and Read reads again.
			var buf bytes.Buffer
			if err := Write(&buf, f); err != nil {
				t.Fatal(err)
			}
			g, err := Read(&buf, int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, g, f)
		})
	}
}

func TestReadRejectsCorruptFiles(t *testing.T) {
	_, good := pytorchMLP()
	one := `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`
	withLen := func(n uint64, rest []byte) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	for _, tc := range []struct {
		name string
		file []byte
		want string // in the error message
	}{
		{"empty", nil, "too short for the 8-byte header length"},
		{"seven bytes", good[:7], "too short"},
		{"huge header length", withLen(1<<63, []byte("{}")), "exceeds the limit"},
		{"header length over the limit", withLen(MaxHeaderSize+1, nil), "exceeds the limit"},
		{"header length past the end", withLen(200, []byte(`{}`)), "exceeds the 2 bytes that follow"},
		{"header length zero", withLen(0, nil), "too short for a JSON object"},
		{"header cut short", good[:40], "exceeds the 32 bytes that follow"},
		{"data cut short", good[:len(good)-5], "ends at byte 92 of a 87-byte data buffer"},
		{"bad JSON", build(`{"a":{"dtype":"F32","shape":[1],`, false), "not a valid JSON object"},
		{"JSON array", build(`[1,2]`, true), "does not start with '{'"},
		{"leading space", build(` {}`, true), "does not start with '{'"},
		{"not UTF-8", build("{\"\xff\":1}", true), "not valid UTF-8"},
		{"garbage after JSON", build(`{}x`, true), "after its JSON object"},
		{"two objects", build(`{}{}`, true), "after its JSON object"},
		{"NUL padding", build("{}\x00\x00\x00\x00\x00\x00", false), "after its JSON object"},
		{"unknown dtype", build(`{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, true, make([]byte, 16)), `unknown dtype "F128"`},
		{"dtype not a string", build(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, true, le(1)), "dtype is not a string"},
		{"entry not an object", build(`{"a":5}`, true), "not a JSON object"},
		{"entry null", build(`{"a":null}`, true), "not a JSON object"},
		{"missing dtype", build(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, true, le(1)), `no "dtype" field`},
		{"missing shape", build(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, true, le(1)), `no "shape" field`},
		{"null shape", build(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, true, le(1)), `no "shape" field`},
		{"missing offsets", build(`{"a":{"dtype":"F32","shape":[1]}}`, true, le(1)), `no "data_offsets" field`},
		{"three offsets", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, true, le(1)), "two non-negative integers"},
		{"one offset", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, true, le(1)), "two non-negative integers"},
		{"negative offset", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, true, le(1)), "two non-negative integers"},
		{"offsets past int64", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}}`, true, le(1)), "too large"},
		{"offsets reversed", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, true, le(1)), "end before they begin"},
		{"negative dimension", build(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, true, le(1)), "invalid dimension"},
		{"fractional dimension", build(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, true, le(1)), "not a list of integers"},
		{"shape overflow", build(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, true, le(1)), "too large"},
		{"bytes overflow", build(`{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}}`, true, le(1)), "too large"},
		{"shape mismatch", build(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}`, true, make([]byte, 12)), "needs 16 bytes, data_offsets [0, 12] span 12"},
		{"dtype mismatch", build(`{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,4]}}`, true, le(1)), "needs 8 bytes"},
		{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, true, make([]byte, 12)), `overlaps tensor "a"`},
		{"same offsets", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, true, le(1)), "overlaps"},
		{"gap", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, true, make([]byte, 12)), "4 unused bytes"},
		{"gap at start", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, true, make([]byte, 8)), "4 unused bytes"},
		{"trailing data", build(one, true, le(1), []byte("junk")), "4 bytes of trailing data"},
		{"data without tensors", build(`{}`, true, []byte{0}), "1 bytes of trailing data"},
		{"offsets past buffer", build(one, true, le(1)[:2]), "ends at byte 4 of a 2-byte data buffer"},
		{"duplicate name", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, true, []byte{1, 2}), `names "a" twice`},
		{"duplicate metadata", build(`{"__metadata__":{},"__metadata__":{}}`, true), "twice"},
		{"metadata not strings", build(`{"__metadata__":{"epoch":3}}`, true), "must map strings to strings"},
		{"metadata not an object", build(`{"__metadata__":[]}`, true), "must map strings to strings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(tc.file), int64(len(tc.file)))
			if err == nil {
				t.Fatalf("Read succeeded with %d tensors, want an error", len(f.Tensors))
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), "safetensors: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			// The header alone shows every one of these faults.
			path := filepath.Join(t.TempDir(), "bad.safetensors")
			if err := os.WriteFile(path, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadHeaderFile(path); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("ReadHeaderFile: %v, want an error naming %s and containing %q", err, path, tc.want)
			}
		})
	}
}

func TestReadHeaderFile(t *testing.T) {
	f := &File{
		Tensors: map[string]Tensor{
			"fc.weight": F32([]int{2, 3}, make([]float32, 6)),
			"fc.bias":   BF16([]int{2}, []float32{1, 2}),
			"step":      I64(nil, []int64{3}),
		},
		Metadata: map[string]string{"format": "pt"},
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeaderFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.Metadata, f.Metadata) || !reflect.DeepEqual(h.Names(), f.Names()) {
		t.Fatalf("header %+v, want the file's names %v and metadata %v", h, f.Names(), f.Metadata)
	}
	for name, tt := range f.Tensors {
		if got := h.Tensors[name]; got.DType != tt.DType || !reflect.DeepEqual(got.Shape, tt.Shape) && len(got.Shape)+len(tt.Shape) > 0 {
			t.Errorf("%s: %+v, want %s %v", name, got, tt.DType, tt.Shape)
		}
	}
	if _, err := ReadHeaderFile(filepath.Join(t.TempDir(), "none.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

func TestReadShortStream(t *testing.T) {
	_, good := pytorchMLP()
	for _, cut := range []int{0, 5, 8, 30, len(good) - 1} {
		_, err := Read(bytes.NewReader(good[:cut]), int64(len(good)))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: error %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
	// A stream that lies about a large size costs no more than it holds.
	hdr := `{"a":{"dtype":"U8","shape":[1073741824],"data_offsets":[0,1073741824]}}`
	lie := build(hdr, true, []byte{1, 2, 3})
	size := int64(len(lie)) - 3 + 1<<30
	if _, err := Read(bytes.NewReader(lie), size); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("lying size: error %v, want io.ErrUnexpectedEOF", err)
	}
	// Errors from the reader pass through.
	boom := errors.New("boom")
	if _, err := Read(iotest.ErrReader(boom), 100); !errors.Is(err, boom) {
		t.Errorf("reader error: got %v", err)
	}
	// Negative sizes are refused.
	if _, err := Read(bytes.NewReader(good), -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative size: got %v", err)
	}
}

func TestReadOnlyConsumesSize(t *testing.T) {
	_, good := pytorchMLP()
	r := bytes.NewReader(append(append([]byte(nil), good...), "next"...))
	if _, err := Read(r, int64(len(good))); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "next" {
		t.Errorf("left %q unread, want %q", rest, "next")
	}
}

func TestReadFileErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.safetensors")
	_, good := pytorchMLP()
	if err := os.WriteFile(path, good[:len(good)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want ErrInvalid naming %s", err, path)
	}
	_, err = ReadFile(filepath.Join(dir, "missing.safetensors"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
	if _, err := ReadFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: got %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	types := []DType{Bool, Uint8, Int8, Float8E5M2, Float8E4M3, Int16, Uint16, Float16, BFloat16, Int32, Uint32, Float32, Float64, Int64, Uint64}
	for trial := range 20 {
		f := &File{Tensors: map[string]Tensor{}, Metadata: map[string]string{}}
		for i := range rng.IntN(8) {
			dt := types[rng.IntN(len(types))]
			shape := make([]int, rng.IntN(4))
			n := 1
			for j := range shape {
				shape[j] = rng.IntN(5)
				n *= shape[j]
			}
			data := make([]byte, n*dt.Size())
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			f.Tensors[string(rune('a'+rng.IntN(26)))+"."+string(rune('0'+i))] = Tensor{DType: dt, Shape: shape, Data: data}
		}
		if rng.IntN(2) == 0 {
			f.Metadata["format"] = "pt"
			f.Metadata["note ☃"] = "\x01\t\"quoted\"\\"
		}
		path := filepath.Join(t.TempDir(), "rt.safetensors")
		if err := WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
		g, err := ReadFile(path)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		assertEqual(t, g, f)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkAligned(t, fmt.Sprintf("trial %d", trial), raw)
	}
}

// checkAligned fails the test unless the file raw has a header length that
// is a multiple of 8 and every tensor aligned to its element size, as the
// reference writer guarantees. It returns the header's tensors in the
// order of their data.
func checkAligned(t *testing.T, what string, raw []byte) []info {
	t.Helper()
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 {
		t.Errorf("%s: header length %d is not a multiple of 8", what, n)
	}
	infos, _, err := parseHeader(raw[8 : 8+n])
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, in := range infos {
		if in.begin%int64(in.dtype.Size()) != 0 {
			t.Errorf("%s: tensor %q of %s starts at %d", what, in.name, in.dtype, in.begin)
		}
	}
	return infos
}

func TestWriteAligns(t *testing.T) {
	f := &File{Tensors: map[string]Tensor{
		"a": U8([]int{3}, []uint8{1, 2, 3}),
		"b": F64([]int{1}, []float64{1}),
		"c": F16([]int{1}, []float32{1}),
		"d": F32([]int{1}, []float32{1}),
	}}
	var buf bytes.Buffer
	if err := Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	order := ""
	for _, in := range checkAligned(t, "Write", buf.Bytes()) {
		order += in.name
	}
	if order != "bdca" {
		t.Errorf("layout order %q, want bdca (by decreasing alignment)", order)
	}
}

func TestWriteRejectsInvalidFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		file *File
		want string
	}{
		{"nil", nil, "nil File"},
		{"short data", &File{Tensors: map[string]Tensor{"w": F32([]int{2, 2}, []float32{1, 2, 3})}}, `tensor "w": invalid data: shape [2 2] of F32 needs 16 bytes, the tensor holds 12`},
		{"unknown dtype", &File{Tensors: map[string]Tensor{"w": {DType: "F128"}}}, `unknown dtype "F128"`},
		{"empty dtype", &File{Tensors: map[string]Tensor{"w": {}}}, `unknown dtype ""`},
		{"negative dim", &File{Tensors: map[string]Tensor{"w": {DType: Uint8, Shape: []int{-1}}}}, "negative dimension"},
		{"reserved name", &File{Tensors: map[string]Tensor{"__metadata__": U8(nil, []uint8{1})}}, "cannot be named"},
		{"bad UTF-8 name", &File{Tensors: map[string]Tensor{"\xff": U8(nil, []uint8{1})}}, "not valid UTF-8"},
		{"bad UTF-8 metadata", &File{Metadata: map[string]string{"k": "\xff"}}, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tc.file)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write: error %v, want ErrInvalid containing %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing", buf.Len())
			}
			path := filepath.Join(t.TempDir(), "x.safetensors")
			err = WriteFile(path, tc.file)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), path) {
				t.Errorf("WriteFile: error %v, want ErrInvalid naming the file", err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("WriteFile left %s behind", path)
			}
		})
	}
}

func TestWriteFileKeepsOldFileOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	f, want := pytorchMLP()
	if err := WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	bad := &File{Tensors: map[string]Tensor{"w": {DType: Float32, Shape: []int{2}}}}
	if err := WriteFile(path, bad); err == nil {
		t.Fatal("WriteFile of an invalid file succeeded")
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("old file changed: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
}

func TestWriterErrors(t *testing.T) {
	f, _ := pytorchMLP()
	boom := errors.New("disk full")
	for _, limit := range []int{0, 10, 200} {
		w := &failingWriter{left: limit, err: boom}
		if err := Write(w, f); !errors.Is(err, boom) {
			t.Errorf("limit %d: error %v, want %v", limit, err, boom)
		}
	}
}

type failingWriter struct {
	left int
	err  error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, w.err
	}
	w.left -= len(p)
	return len(p), nil
}

func TestNames(t *testing.T) {
	f, _ := pytorchMLP()
	want := []string{"fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"}
	if got := f.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

func TestTensorsDoNotShareCapacity(t *testing.T) {
	_, raw := pytorchMLP()
	f, err := Read(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	b := f.Tensors["fc1.bias"]
	_ = append(b.Data, 0xff, 0xff, 0xff, 0xff)
	w, err := f.Tensors["fc1.weight"].Float32()
	if err != nil {
		t.Fatal(err)
	}
	if w[0] != 0.5 {
		t.Errorf("appending to one tensor changed another: %v", w[0])
	}
}

func TestReadN(t *testing.T) {
	// Larger than one chunk, so that the untrusted path grows its buffer.
	n := int64(readChunk*2 + 12345)
	src := make([]byte, n)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for _, trusted := range []bool{false, true} {
		got, err := readN(iotest.HalfReader(bytes.NewReader(src)), n, trusted)
		if err != nil || !bytes.Equal(got, src) {
			t.Errorf("trusted=%v: err %v, equal %v", trusted, err, bytes.Equal(got, src))
		}
		_, err = readN(bytes.NewReader(src[:n-1]), n, trusted)
		var short *shortRead
		if !errors.As(err, &short) || short.n != n-1 {
			t.Errorf("trusted=%v: short read: %v", trusted, err)
		}
	}
}
