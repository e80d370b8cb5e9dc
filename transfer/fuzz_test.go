package transfer

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

// fuzzSeeds builds a small set and returns its manifest and first shard.
func fuzzSeeds(f *testing.F, dtype string) (manifest, shard []byte) {
	d := toyData(6, 6, 6, 3)
	ts, _ := toyTeachers(d, 2)
	ts[0].Features = []FeatureSpec{{Name: "h", Shape: []int{2}}}
	ts[0].FeatureFn = func(x []float32, n int, out map[string][]float32) error {
		copy(out["h"], x[:2*n])
		return nil
	}
	spec := toySpec(d, f.TempDir(), 1)
	spec.Dtype = dtype
	spec.ShardBytes = 400
	s := mustBuild(f, spec, ts)
	return readFile(f, filepath.Join(s.Dir(), manifestName)), readFile(f, filepath.Join(s.Dir(), "shard-00000.bin"))
}

// FuzzReadShard checks that the shard reader never panics or allocates
// beyond the file's size, whatever the file holds, and that whatever it
// accepts is consistent with its size.
func FuzzReadShard(f *testing.F) {
	for _, dtype := range []string{Float32, Float16} {
		_, shard := fuzzSeeds(f, dtype)
		f.Add(shard)
		f.Add(shard[:len(shard)-1])
		f.Add(shard[:headerSize])
		bad := bytes.Clone(shard)
		bad[30] = 0xff // a huge row count
		f.Add(bad)
	}
	f.Add([]byte{})
	f.Add([]byte(shardMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rows int
		h, sum, err := readShard(bytes.NewReader(b), int64(len(b)), nil, func(k int, row []byte) error {
			if k != rows {
				t.Fatalf("row %d passed as %d", rows, k)
			}
			rows++
			out := make([]float32, len(row)/2)
			decodeValues(out, row, 2)
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		esize := 4
		if h.dtype == codeFloat16 {
			esize = 2
		}
		if uint64(rows) != h.rows || uint64(len(b)) != headerSize+h.rows*h.width*uint64(esize)+footerSize {
			t.Fatalf("accepted %d bytes as %d rows of %d values", len(b), h.rows, h.width)
		}
		if sum == [32]byte{} {
			t.Fatal("no checksum returned")
		}
	})
}

// FuzzParseManifest checks that the manifest parser never panics and
// that what it accepts is self-consistent and survives a round trip.
func FuzzParseManifest(f *testing.F) {
	for _, dtype := range []string{Float32, Float16} {
		m, _ := fuzzSeeds(f, dtype)
		f.Add(m)
		f.Add(bytes.Replace(m, []byte(`"rows": 12`), []byte(`"rows": 13`), 1))
		f.Add(bytes.Replace(m, []byte(`shard-00000.bin`), []byte(`../x`), 1))
		f.Add(m[:len(m)/2])
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"format":"distill.transfer/v1","rows":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if m.Key != Key(m.Description) || m.Rows != m.Description.Rows() {
			t.Fatal("accepted an inconsistent manifest")
		}
		next := 0
		for s, sh := range m.Shards {
			if sh.File != shardName(s) || sh.First != next {
				t.Fatalf("accepted shard %d as %+v", s, sh)
			}
			next += sh.Rows
		}
		if next != m.Rows {
			t.Fatalf("shards cover %d of %d rows", next, m.Rows)
		}
		out, err := marshalManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseManifest(out)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
