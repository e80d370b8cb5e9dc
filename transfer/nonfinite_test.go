package transfer

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// poisonValue writes v over value j of row r in shard 0 of the set in
// dir and recomputes the shard's trailing checksum and the manifest's
// SHA-256, as a set written by something other than Build might hold.
func poisonValue(t *testing.T, dir string, r, j int, v float32) {
	t.Helper()
	m, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, m.Shards[0].File)
	b := readFile(t, path)
	binary.LittleEndian.PutUint32(b[headerSize+(r*m.Width+j)*4:], math.Float32bits(v))
	body := sha256.Sum256(b[:len(b)-footerSize])
	copy(b[len(b)-footerSize:], body[:])
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m.Shards[0].SHA256 = hexSum(sha256.Sum256(b))
	mb, err := marshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, manifestName), mb, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Issue 15 item 3: a stored non-finite value whose checksums are right is
// still refused when read, naming the teacher and the first bad row.
func TestNonFiniteStoredRows(t *testing.T) {
	d := toyData(6, 6, 6, 3)
	for _, tc := range []struct {
		name string
		j    int // value of row 1 to poison: 0..2 logits, 3..4 feature "h"
		v    float32
		read func(*Set) error
		want string
	}{
		{"NaN logit", 2, float32(math.NaN()), func(s *Set) error {
			return s.Logits([]int{0, 1}, nil, 2, make([]float32, 6))
		}, `row 1: teacher 0 ("t0") logit 2 is NaN`},
		{"+Inf logit", 0, float32(math.Inf(1)), func(s *Set) error {
			return s.SoftTargets([]int{1}, 2, make([]float32, 3))
		}, `row 1: teacher 0 ("t0") logit 0 is +Inf`},
		{"-Inf feature", 4, float32(math.Inf(-1)), func(s *Set) error {
			return s.Features(0, "h", []int{0, 1}, make([]float32, 4))
		}, `row 1: teacher 0 ("t0") value of feature "h" 1 is -Inf`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := toyTeachers(d, 1)
			ts[0].Features = []FeatureSpec{{Name: "h", Shape: []int{2}}}
			ts[0].FeatureFn = func(x []float32, n int, out map[string][]float32) error {
				copy(out["h"], x[:2*n])
				return nil
			}
			spec := toySpec(d, t.TempDir(), 0)
			s := mustBuild(t, spec, ts)
			poisonValue(t, s.Dir(), 1, tc.j, tc.v)
			s2, err := Open(spec.Dir, s.Key(), d)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.read(s2)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read: %v, want a corruption error containing %q", err, tc.want)
			}
		})
	}
}
