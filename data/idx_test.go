package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/internal/atomicfile"
)

var update = flag.Bool("update", false, "rewrite the seed files under testdata/")

// encodeIDX returns x in IDX format, gzipped if gz.
func encodeIDX(t testing.TB, x *IDX, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := io.Writer(&buf)
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	if err := WriteIDX(w, x); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestIDXRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		x    IDX
	}{
		{"ubyte 3d", IDX{IDXUint8, []int{2, 3, 4}, seq(24)}},
		{"ubyte 1d", IDX{IDXUint8, []int{5}, seq(5)}},
		{"sbyte", IDX{IDXInt8, []int{3}, seq(3)}},
		{"int16", IDX{IDXInt16, []int{2, 2}, seq(8)}},
		{"int32", IDX{IDXInt32, []int{3}, seq(12)}},
		{"float32", IDX{IDXFloat32, []int{1, 2}, seq(8)}},
		{"float64", IDX{IDXFloat64, []int{2}, seq(16)}},
		{"empty", IDX{IDXUint8, []int{0, 28, 28}, []byte{}}},
	}
	for _, tt := range tests {
		for _, gz := range []bool{false, true} {
			name := tt.name
			if gz {
				name += " gzip"
			}
			t.Run(name, func(t *testing.T) {
				got, err := ReadIDX(bytes.NewReader(encodeIDX(t, &tt.x, gz)))
				if err != nil {
					t.Fatal(err)
				}
				if got.Type != tt.x.Type || !slices.Equal(got.Dims, tt.x.Dims) || !bytes.Equal(got.Data, tt.x.Data) {
					t.Fatalf("read %+v, want %+v", got, tt.x)
				}
				if es, _ := idxElemSize(got.Type); got.Len() != len(got.Data)/es {
					t.Errorf("Len() = %d, want %d", got.Len(), len(got.Data)/es)
				}
			})
		}
	}
}

func TestIDXHeaderLayout(t *testing.T) {
	b := encodeIDX(t, &IDX{IDXUint8, []int{2, 1}, []byte{7, 9}}, false)
	want := []byte{0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 1, 7, 9}
	if !bytes.Equal(b, want) {
		t.Fatalf("WriteIDX wrote % x, want % x", b, want)
	}
}

func TestReadIDXErrors(t *testing.T) {
	valid := encodeIDX(t, &IDX{IDXUint8, []int{2, 3}, seq(6)}, false)
	validGz := encodeIDX(t, &IDX{IDXUint8, []int{2, 3}, seq(6)}, true)
	badCRC := slices.Clone(validGz)
	badCRC[len(badCRC)-5] ^= 0xff // the CRC-32 in the gzip trailer
	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"empty", nil, "ends after 0 bytes, inside the 4-byte header"},
		{"short header", []byte{0, 0, 8}, "ends after 3 bytes"},
		{"bad magic", []byte{'P', 'K', 3, 4, 0, 0, 0, 1}, "bad magic number"},
		{"unknown type", []byte{0, 0, 0x42, 1, 0, 0, 0, 1, 0}, "unsupported element type code 0x42"},
		{"zero dims", []byte{0, 0, 8, 0}, "0 dimensions"},
		{"truncated dims", []byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0}, "declares 3 dimensions but the input ends after 6 of their 12 bytes"},
		{"truncated data", valid[:len(valid)-2], "declares [2 3] unsigned byte elements (6 bytes) but the input holds only 4"},
		{"trailing data", append(slices.Clone(valid), 1), "data continues after the 6 bytes"},
		{"too many elements", []byte{0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0}, "declare more than 2147483648 elements"},
		{"too many elements huge dims", []byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "declare more than"},
		{"truncated gzip", validGz[:len(validGz)-10], "gzip stream ends early"},
		{"gzip checksum", badCRC, "corrupt gzip stream"},
		{"gzip magic only", gzipMagic, "gzip stream ends early, in the gzip header"},
		{"bad gzip header", []byte{0x1f, 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "corrupt gzip stream in the gzip header"},
		{"gzip of garbage", encodeGzip(t, []byte("hello")), "bad magic number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := ReadIDX(bytes.NewReader(tt.input))
			if err == nil {
				t.Fatalf("ReadIDX succeeded: %+v", x)
			}
			if !errors.Is(err, ErrIDXFormat) {
				t.Errorf("error %v does not wrap ErrIDXFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func encodeGzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadIDXHugeHeaderDoesNotAllocate checks that a header declaring
// about 2 GB over a few bytes of data fails without allocating for the
// declared size.
func TestReadIDXHugeHeaderDoesNotAllocate(t *testing.T) {
	input := []byte{0, 0, 8, 2, 0x40, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3} // 2^30 × 2 elements
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadIDX(bytes.NewReader(input))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrIDXFormat) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("error %v, want a truncation error", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Errorf("ReadIDX allocated %d bytes for a 15-byte input", got)
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReadIDXPassesThroughReaderErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	valid := encodeIDX(t, &IDX{IDXUint8, []int{100}, seq(100)}, false)
	validGz := encodeIDX(t, &IDX{IDXUint8, []int{100}, seq(100)}, true)
	for _, in := range [][]byte{nil, valid[:2], valid[:6], valid[:50], validGz[:1], validGz[:20]} {
		_, err := ReadIDX(&failingReader{data: slices.Clone(in), err: boom})
		if !errors.Is(err, boom) {
			t.Errorf("after %d bytes: error %v, want it to wrap the reader's error", len(in), err)
		}
		if errors.Is(err, ErrIDXFormat) {
			t.Errorf("after %d bytes: an I/O error was reported as a format error: %v", len(in), err)
		}
	}
}

func TestWriteIDXRejectsMalformed(t *testing.T) {
	tests := []struct {
		name string
		x    *IDX
		want string
	}{
		{"nil", nil, "nil IDX"},
		{"unknown type", &IDX{0x07, []int{1}, []byte{1}}, "unsupported element type code 0x07"},
		{"no dims", &IDX{IDXUint8, nil, nil}, "0 dimensions"},
		{"too many dims", &IDX{IDXUint8, make([]int, 256), nil}, "256 dimensions"},
		{"negative dim", &IDX{IDXUint8, []int{-1}, nil}, "outside the IDX range"},
		{"huge dim", &IDX{IDXUint8, []int{1 << 32}, nil}, "outside the IDX range"},
		{"short data", &IDX{IDXInt16, []int{3}, seq(5)}, "declare 6 bytes of data but Data holds 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteIDX(&buf, tt.x)
			if err == nil || !errors.Is(err, ErrIDXFormat) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WriteIDX = %v, want an ErrIDXFormat error containing %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("WriteIDX wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

func TestWriteIDXPassesThroughWriterErrors(t *testing.T) {
	boom := errors.New("disk full")
	err := WriteIDX(errWriter{boom}, &IDX{IDXUint8, []int{1}, []byte{1}})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want it to wrap the writer's error", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// seedFiles are the tiny valid IDX files under testdata/ that seed
// FuzzReadIDX. Run "go test -run TestSeedFiles -update" to rewrite them.
var seedFiles = []struct {
	name string
	x    IDX
	gz   bool
}{
	{"labels-idx1-ubyte", IDX{IDXUint8, []int{5}, []byte{5, 0, 4, 1, 9}}, false},
	{"images-idx3-ubyte.gz", IDX{IDXUint8, []int{2, 3, 3}, seq(18)}, true},
	{"float32-idx2", IDX{IDXFloat32, []int{2, 1}, []byte{0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0}}, false},
}

func TestSeedFiles(t *testing.T) {
	for _, s := range seedFiles {
		path := filepath.Join("testdata", s.name)
		want := encodeIDX(t, &s.x, s.gz)
		if *update {
			if err := atomicfile.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestSeedFiles -update to create it)", err)
		}
		x, err := ReadIDX(bytes.NewReader(got))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if x.Type != s.x.Type || !slices.Equal(x.Dims, s.x.Dims) || !bytes.Equal(x.Data, s.x.Data) {
			t.Errorf("%s holds %+v, want %+v", path, x, s.x)
		}
	}
}

// FuzzReadIDX checks that ReadIDX never panics, that whatever it accepts
// is well formed, and that writing it back reproduces the input's IDX
// content.
func FuzzReadIDX(f *testing.F) {
	for _, s := range seedFiles {
		b, err := os.ReadFile(filepath.Join("testdata", s.name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 8, 1, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		x, err := ReadIDX(bytes.NewReader(in))
		if err != nil {
			return
		}
		size, err := idxDataSize(x.Type, x.Dims)
		if err != nil || size != len(x.Data) {
			t.Fatalf("accepted malformed IDX %+v: size %d, %v", x, size, err)
		}
		var buf bytes.Buffer
		if err := WriteIDX(&buf, x); err != nil {
			t.Fatalf("cannot write back what was read: %v", err)
		}
		if len(in) >= 2 && !bytes.Equal(in[:2], gzipMagic) && !bytes.Equal(buf.Bytes(), in) {
			t.Fatalf("round trip changed the file:\n in % x\nout % x", in, buf.Bytes())
		}
		y, err := ReadIDX(&buf)
		if err != nil || y.Type != x.Type || !slices.Equal(y.Dims, x.Dims) || !bytes.Equal(y.Data, x.Data) {
			t.Fatalf("re-read %+v, %v; want %+v", y, err, x)
		}
	})
}
