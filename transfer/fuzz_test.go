package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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

// FuzzSetValues fuzzes the values stored in a set's first shard, keeping
// the shard's trailing checksum and the manifest's SHA-256 in step so
// that the reads behind them are reached: opening the set and reading
// every row's logits, soft targets, ensemble logits and features must
// return an error wrapping ErrCorrupt (a non-finite value) or finite
// values, never panic.
func FuzzSetValues(f *testing.F) {
	d := toyData(6, 6, 6, 3)
	ts, _ := toyTeachers(d, 2)
	ts[0].Features = []FeatureSpec{{Name: "h", Shape: []int{2}}}
	ts[0].FeatureFn = func(x []float32, n int, out map[string][]float32) error {
		copy(out["h"], x[:2*n])
		return nil
	}
	spec := toySpec(d, f.TempDir(), 1)
	spec.ShardBytes = 400
	s := mustBuild(f, spec, ts)
	m, err := readManifest(s.Dir())
	if err != nil {
		f.Fatal(err)
	}
	shard := readFile(f, filepath.Join(s.Dir(), m.Shards[0].File))
	body := shard[headerSize : len(shard)-footerSize]
	f.Add(body)
	nan := bytes.Clone(body)
	binary.LittleEndian.PutUint32(nan[4*5:], math.Float32bits(float32(math.NaN())))
	f.Add(nan)
	f.Add(bytes.Repeat([]byte{0xff, 0xff, 0x7f, 0x7f}, len(body)/4)) // MaxFloat32 everywhere
	f.Fuzz(func(t *testing.T, vals []byte) {
		dir := t.TempDir()
		key := m.Key
		setDir := filepath.Join(dir, key)
		if err := os.MkdirAll(setDir, 0o755); err != nil {
			t.Fatal(err)
		}
		// The fuzzed values, cut or zero-padded to the shard's size.
		b := append(bytes.Clone(shard[:headerSize]), make([]byte, len(body))...)
		copy(b[headerSize:], vals)
		sum := sha256.Sum256(b)
		b = append(b, sum[:]...)
		mm := *m
		mm.Shards = slices.Clone(m.Shards)
		mm.Shards[0].SHA256 = hexSum(sha256.Sum256(b))
		mb, err := marshalManifest(&mm)
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{m.Shards[0].File: b, manifestName: mb} {
			if err := os.WriteFile(filepath.Join(setDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, sh := range m.Shards[1:] {
			if err := os.WriteFile(filepath.Join(setDir, sh.File), readFile(t, filepath.Join(s.Dir(), sh.File)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		set, err := Open(dir, key, d)
		if err != nil {
			t.Fatal(err) // only the values changed, checksums kept in step
		}
		rows := m.Shards[0].Rows
		idx := make([]int, rows)
		for i := range idx {
			idx[i] = i
		}
		c := set.Classes()
		check := func(what string, out []float32, err error) {
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: error %v does not wrap ErrCorrupt", what, err)
				}
				return
			}
			for i, v := range out {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%s: value %d is %v, returned without an error", what, i, v)
				}
			}
		}
		for tch := range set.Teachers() {
			tv, err := set.Teacher(tch)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]float32, rows*c)
			check("teacher logits", out, tv.Logits(idx, nil, rows, out))
		}
		soft := make([]float32, rows*c)
		check("soft targets", soft, set.SoftTargets(idx, 2, soft))
		ens, err := set.Ensemble(2)
		if err != nil {
			t.Fatal(err)
		}
		el := make([]float32, rows*c)
		check("ensemble logits", el, ens.Logits(idx, nil, rows, el))
		feats := make([]float32, rows*2)
		check("features", feats, set.Features(0, "h", idx, feats))
		if err := set.Verify(); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Verify: %v does not wrap ErrCorrupt", err)
		}
	})
}
