package transfer

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/train"
)

func TestCachedTargetsMatchTheTeacher(t *testing.T) {
	d := toyData(20, 6, 6, 4)
	ts, ls := toyTeachers(d, 1)
	s := mustBuild(t, toySpec(d, t.TempDir(), 3), ts)
	if s.Len() != 80 || s.Examples() != 20 || s.Copies() != 3 || s.Teachers() != 1 || s.Classes() != 4 {
		t.Fatalf("Len %d, Examples %d, Copies %d, Teachers %d, Classes %d", s.Len(), s.Examples(), s.Copies(), s.Teachers(), s.Classes())
	}
	// Every row's cached logits are bit for bit the teacher's logits on
	// the row's recomputed input.
	idx := allRows(s.Len())
	slices.Reverse(idx)
	x := make([]float32, len(idx)*36)
	y := make([]int32, len(idx))
	s.Gather(idx, x, y)
	live := make([]float32, len(idx)*4)
	if err := ls[0].Forward(x, len(idx), live); err != nil {
		t.Fatal(err)
	}
	cached := make([]float32, len(idx)*4)
	if err := s.Logits(idx, nil, len(idx), cached); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(live, cached) {
		t.Fatal("cached logits differ from the teacher's on the gathered inputs")
	}
	// Copy 0 is the base data itself.
	for i := range 20 {
		k := len(idx) - 1 - i // row i
		if !slices.Equal(x[k*36:(k+1)*36], d.X[i*36:(i+1)*36]) || y[k] != d.Y[i] {
			t.Fatalf("row %d is not base example %d", i, i)
		}
	}
}

func TestDeterministicBuild(t *testing.T) {
	d := toyData(20, 6, 6, 4)
	ts, _ := toyTeachers(d, 2)
	spec := toySpec(d, t.TempDir(), 2)
	spec.ShardBytes = 600
	a := mustBuild(t, spec, ts)
	spec.Dir = t.TempDir()
	b := mustBuild(t, spec, ts)
	if a.Key() != b.Key() {
		t.Fatalf("keys differ: %s, %s", a.Key(), b.Key())
	}
	fa, fb := setFiles(t, a.Dir()), setFiles(t, b.Dir())
	if len(fa) < 4 {
		t.Fatalf("expected several shards, got files %v", slices.Collect(maps.Keys(fa)))
	}
	if !maps.EqualFunc(fa, fb, bytes.Equal) {
		t.Fatal("two builds of the same set wrote different files")
	}
	// Gather gives the same rows in any order and from many goroutines.
	want := make([]float32, a.Len()*36)
	a.Gather(allRows(a.Len()), want, nil)
	var wg sync.WaitGroup
	for r := a.Len() - 1; r >= 0; r-- {
		wg.Go(func() {
			got := make([]float32, 36)
			b.Gather([]int{r}, got, nil)
			if !slices.Equal(got, want[r*36:(r+1)*36]) {
				t.Errorf("row %d differs when gathered alone", r)
			}
		})
	}
	wg.Wait()
}

func TestGetOrBuildReuses(t *testing.T) {
	d := toyData(16, 6, 6, 3)
	ts, ls := toyTeachers(d, 2)
	c := Cache{Dir: t.TempDir()}
	spec := toySpec(d, "", 2)
	var calls int
	s1, err := c.GetOrBuild(t.Context(), spec, ts, func(done, total int) {
		calls++
		if done > total || total != 48 {
			t.Errorf("progress(%d, %d)", done, total)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || totalRows(ls) != 2*48 {
		t.Fatalf("first GetOrBuild: %d progress calls, %d teacher rows; want > 0 and 96", calls, totalRows(ls))
	}
	before := totalRows(ls)

	s2, err := c.GetOrBuild(t.Context(), spec, ts, func(int, int) { t.Error("progress called on reuse") })
	if err != nil {
		t.Fatal(err)
	}
	if n := totalRows(ls) - before; n != 0 {
		t.Fatalf("second GetOrBuild ran the teachers on %d rows", n)
	}
	if s2.Key() != s1.Key() || s2.Dir() != filepath.Join(c.Dir, s1.Key()) {
		t.Fatalf("reused set %s at %s, built %s", s2.Key(), s2.Dir(), s1.Key())
	}

	// New weights and names reuse the set and take effect.
	ts2 := slices.Clone(ts)
	ts2[0].Weight, ts2[1].Weight, ts2[0].Name = 1, 0, "renamed"
	s3, err := c.GetOrBuild(t.Context(), spec, ts2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := totalRows(ls) - before; n != 0 || s3.Key() != s1.Key() {
		t.Fatalf("re-weighting ran the teachers on %d rows (key %s)", n, s3.Key())
	}
	if w := s3.Weights(); w[0] != 1 || w[1] != 0 {
		t.Fatalf("weights %v, want [1 0]", w)
	}
	p := make([]float32, 3)
	z := make([]float32, 3)
	if err := s3.SoftTargets([]int{5}, 1, p); err != nil {
		t.Fatal(err)
	}
	t0, _ := s3.Teacher(0)
	if err := t0.Logits([]int{5}, nil, 1, z); err != nil {
		t.Fatal(err)
	}
	if sm := loss.Softmax(z, 1); math.Abs(float64(p[0])-sm[0]) > 1e-6 {
		t.Fatalf("with weights [1 0] the soft target is %v, want teacher 0's %v", p, sm)
	}

	// A new seed is a new set.
	spec.Seed++
	if _, err := c.GetOrBuild(t.Context(), spec, ts, nil); err != nil {
		t.Fatal(err)
	}
	if n := totalRows(ls) - before; n != 2*48 {
		t.Fatalf("a new seed ran the teachers on %d rows, want 96", n)
	}
}

func TestKey(t *testing.T) {
	d := toyData(16, 6, 6, 3)
	ts, _ := toyTeachers(d, 2)
	base, err := Describe(toySpec(d, "", 2), ts)
	if err != nil {
		t.Fatal(err)
	}
	k0 := Key(base)
	if len(k0) != 64 || !isHash(k0) {
		t.Fatalf("key %q", k0)
	}
	clone := func() Description {
		c := base
		c.Source.Shape = slices.Clone(c.Source.Shape)
		c.Teachers = slices.Clone(c.Teachers)
		return c
	}
	for _, tc := range []struct {
		name   string
		edit   func(*Description)
		change bool
	}{
		{"nothing", func(*Description) {}, false},
		{"source name", func(d *Description) { d.Source.Name = "other" }, false},
		{"teacher name", func(d *Description) { d.Teachers[0].Name = "other" }, false},
		{"teacher weight", func(d *Description) { d.Teachers[0].Weight = 9 }, false},
		{"source content", func(d *Description) { d.Source.SHA256 = fakeHash("x") }, true},
		{"source examples", func(d *Description) { d.Source.Examples++ }, true},
		{"source shape", func(d *Description) { d.Source.Shape[1] = 3 }, true},
		{"labelled", func(d *Description) { d.Source.Labelled = false }, true},
		{"teacher weights file", func(d *Description) { d.Teachers[1].SHA256 = fakeHash("y") }, true},
		{"teacher order", func(d *Description) { d.Teachers[0], d.Teachers[1] = d.Teachers[1], d.Teachers[0] }, true},
		{"teacher count", func(d *Description) { d.Teachers = d.Teachers[:1] }, true},
		{"features", func(d *Description) { d.Teachers[0].Features = []FeatureSpec{{"h", []int{5}}} }, true},
		{"classes", func(d *Description) { d.Classes = 5 }, true},
		{"copies", func(d *Description) { d.Copies = 3 }, true},
		{"seed", func(d *Description) { d.Seed = 6 }, true},
		{"augment", func(d *Description) { d.Augment.Rotate = 10 }, true},
		{"dtype", func(d *Description) { d.Dtype = Float16 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := clone()
			tc.edit(&d)
			if changed := Key(d) != k0; changed != tc.change {
				t.Errorf("key changed: %v, want %v", changed, tc.change)
			}
		})
	}
	// Without copies, the seed and augmentation do not matter.
	s := toySpec(d, "", 0)
	a, _ := Describe(s, ts)
	s.Seed, s.Augment = 99, augment.Config{Shift: 2}
	b, err := Describe(s, ts)
	if err != nil || Key(a) != Key(b) {
		t.Errorf("with copies 0, seed and augment changed the key (err %v)", err)
	}
}

func TestResumeRecomputesOnlyDamagedShards(t *testing.T) {
	d := toyData(20, 6, 6, 4)
	ts, ls := toyTeachers(d, 1)
	c := Cache{Dir: t.TempDir()}
	spec := toySpec(d, "", 1)
	spec.ShardBytes = headerSize + footerSize + 7*4*4 // 7 rows a shard: 40 rows in 6 shards
	s, err := c.GetOrBuild(t.Context(), spec, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	man := s.Manifest()
	if len(man.Shards) != 6 {
		t.Fatalf("%d shards, want 6", len(man.Shards))
	}
	want := setFiles(t, s.Dir())

	// Simulate a crash before the manifest was written, with one shard
	// damaged and a temporary file left behind.
	dir := s.Dir()
	os.Remove(filepath.Join(dir, manifestName))
	flipByte(t, filepath.Join(dir, "shard-00002.bin"), headerSize+5)
	os.WriteFile(filepath.Join(dir, ".shard-00003.bin.tmp12345"), []byte("partial"), 0o644)
	before := ls[0].rows.Load()
	s2, err := c.GetOrBuild(t.Context(), spec, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := ls[0].rows.Load() - before; n != int64(man.Shards[2].Rows) {
		t.Fatalf("resume ran the teacher on %d rows, want the damaged shard's %d", n, man.Shards[2].Rows)
	}
	if got := setFiles(t, s2.Dir()); !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("resumed set's files differ from the original's: %v vs %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}

	// A complete set with a damaged shard is detected and repaired too.
	flipByte(t, filepath.Join(dir, "shard-00004.bin"), headerSize+1)
	before = ls[0].rows.Load()
	if _, err := c.GetOrBuild(t.Context(), spec, ts, nil); err != nil {
		t.Fatal(err)
	}
	if n := ls[0].rows.Load() - before; n != int64(man.Shards[4].Rows) {
		t.Fatalf("repair ran the teacher on %d rows, want %d", n, man.Shards[4].Rows)
	}
}

func TestResumeAfterCancel(t *testing.T) {
	d := toyData(20, 6, 6, 4)
	ts, ls := toyTeachers(d, 1)
	spec := toySpec(d, t.TempDir(), 1)
	spec.ShardBytes = headerSize + footerSize + 10*4*4 // 10 rows a shard
	spec.BatchSize = 5
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := Build(ctx, spec, ts, func(done, total int) {
		if done >= 15 {
			cancel() // mid-way through the second shard
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build after cancel: %v, want context.Canceled", err)
	}
	key := Key(mustDescribe(t, spec, ts))
	if _, err := Open(spec.Dir, key, d); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of an interrupted set: %v, want fs.ErrNotExist", err)
	}
	before := ls[0].rows.Load()
	s, err := Build(t.Context(), spec, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := ls[0].rows.Load() - before; n != 30 {
		t.Fatalf("resumed build ran the teacher on %d rows, want 30 (the first shard kept)", n)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

func mustDescribe(t testing.TB, spec BuildSpec, ts []Teacher) Description {
	t.Helper()
	d, err := Describe(spec, ts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCorruptionDetected(t *testing.T) {
	d := toyData(12, 6, 6, 3)
	ts, _ := toyTeachers(d, 1)
	spec := toySpec(d, "", 1)
	spec.ShardBytes = headerSize + footerSize + 8*3*4 // 8 rows a shard: 3 shards
	shard1 := "shard-00001.bin"
	for _, tc := range []struct {
		name     string
		damage   func(t *testing.T, dir string)
		base     *data.Dataset
		openErr  string // substring of Open's error; "" = Open succeeds
		readErr  string // substring of the error reading row 10 (shard 1)
		notExist bool
	}{
		{name: "flipped data byte", damage: func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, shard1), headerSize+3)
		}, readErr: shard1 + ": corrupt transfer set: checksum mismatch"},
		{name: "flipped checksum byte", damage: func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, shard1), headerSize+8*3*4+2)
		}, readErr: shard1 + ": corrupt transfer set: checksum mismatch"},
		{name: "flipped header byte", damage: func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, shard1), 17)
		}, readErr: shard1 + ": corrupt transfer set: header says rows"},
		{name: "truncated shard", damage: func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, shard1), 50)
		}, openErr: shard1 + ": corrupt transfer set: file is 50 bytes"},
		{name: "missing shard", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, shard1))
		}, openErr: shard1, notExist: true},
		{name: "shards swapped", damage: func(t *testing.T, dir string) {
			a, b := filepath.Join(dir, "shard-00002.bin"), filepath.Join(dir, shard1)
			ba, bb := readFile(t, a), readFile(t, b)
			os.WriteFile(a, bb, 0o644)
			os.WriteFile(b, ba, 0o644)
		}, readErr: shard1 + ": corrupt transfer set: header says rows [16, 24)"},
		{name: "manifest not JSON", damage: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, manifestName), []byte("{not json"), 0o644)
		}, openErr: manifestName + ": corrupt transfer set: manifest is not valid JSON"},
		{name: "manifest edited", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, manifestName)
			b := bytes.Replace(readFile(t, p), []byte(`"copies": 1`), []byte(`"copies": 2`), 1)
			os.WriteFile(p, b, 0o644)
		}, openErr: "does not match its description"},
		{name: "shard checksum edited in manifest", damage: func(t *testing.T, dir string) {
			p := filepath.Join(dir, manifestName)
			m, _ := parseManifest(readFile(t, p))
			m.Shards[1].SHA256 = fakeHash("other")
			b, _ := marshalManifest(m)
			os.WriteFile(p, b, 0o644)
		}, readErr: shard1 + ": corrupt transfer set: file's SHA-256"},
		{name: "missing manifest", damage: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, manifestName))
		}, openErr: "missing or incomplete", notExist: true},
		{name: "other base data", base: toyData(12, 6, 6, 2), openErr: `was built from dataset "toy"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec.Dir = t.TempDir()
			s := mustBuild(t, spec, ts)
			if tc.damage != nil {
				tc.damage(t, s.Dir())
			}
			base := d
			if tc.base != nil {
				base = tc.base
			}
			s2, err := Open(spec.Dir, s.Key(), base)
			if tc.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.openErr) {
					t.Fatalf("Open: %v, want an error containing %q", err, tc.openErr)
				}
				if tc.notExist != errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Open: errors.Is(%v, fs.ErrNotExist) = %v", err, !tc.notExist)
				}
				if !tc.notExist && tc.base == nil && !errors.Is(err, ErrCorrupt) {
					t.Errorf("Open: %v does not wrap ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			out := make([]float32, 3)
			if err := s2.Logits([]int{2}, nil, 1, out); err != nil {
				t.Fatalf("row 2 (shard 0, undamaged): %v", err)
			}
			err = s2.Logits([]int{10}, nil, 1, out)
			if err == nil || !strings.Contains(err.Error(), tc.readErr) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("row 10: %v, want an ErrCorrupt containing %q", err, tc.readErr)
			}
			if err := s2.Verify(); err == nil || !strings.Contains(err.Error(), shard1) {
				t.Fatalf("Verify: %v, want an error naming %s", err, shard1)
			}
		})
	}
}

// softmaxT is softmax(z/T) in float64, for hand computations.
func softmaxT(z []float32, T float64) []float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v)/T)
	}
	p := make([]float64, len(z))
	var s float64
	for j, v := range z {
		p[j] = math.Exp(float64(v)/T - m)
		s += p[j]
	}
	for j := range p {
		p[j] /= s
	}
	return p
}

func TestMultiTeacher(t *testing.T) {
	const T = 2.5
	d := toyData(10, 6, 6, 4)
	ts, ls := toyTeachers(d, 2)
	ts[0].Weight, ts[1].Weight = 1, 3
	s := mustBuild(t, toySpec(d, t.TempDir(), 1), ts)
	if w := s.Weights(); w[0] != 0.25 || w[1] != 0.75 {
		t.Fatalf("weights %v, want [0.25 0.75]", w)
	}
	n := s.Len()
	idx := allRows(n)
	x := make([]float32, n*36)
	s.Gather(idx, x, nil)
	z0, z1 := make([]float32, n*4), make([]float32, n*4)
	ls[0].Forward(x, n, z0)
	ls[1].Forward(x, n, z1)

	p := make([]float32, n*4)
	if err := s.SoftTargets(idx, T, p); err != nil {
		t.Fatal(err)
	}
	ens, err := s.Ensemble(T)
	if err != nil {
		t.Fatal(err)
	}
	zbar := make([]float32, n*4)
	if err := ens.Logits(idx, nil, n, zbar); err != nil {
		t.Fatal(err)
	}
	student := make([]float32, n*4)
	for i := range student {
		student[i] = float32(math.Sin(float64(i)))
	}
	var kl float64
	for r := range n {
		a, b := softmaxT(z0[r*4:(r+1)*4], T), softmaxT(z1[r*4:(r+1)*4], T)
		ps := softmaxT(student[r*4:(r+1)*4], T)
		back := loss.Softmax(zbar[r*4:(r+1)*4], T) // the loss's view of z̄
		for j := range 4 {
			want := 0.25*a[j] + 0.75*b[j]
			if math.Abs(float64(p[r*4+j])-want) > 1e-6 {
				t.Fatalf("row %d class %d: soft target %v, want %v", r, j, p[r*4+j], want)
			}
			if math.Abs(back[j]-want) > 1e-6 {
				t.Fatalf("row %d class %d: softmax(T·log p̄ / T) = %v, want p̄ = %v", r, j, back[j], want)
			}
			kl += want * (math.Log(want) - math.Log(ps[j]))
		}
	}
	// The existing loss, fed z̄, computes the distillation loss against p̄.
	obj := loss.Objective{SoftWeight: 1, Temperature: T}
	labels := make([]int32, n)
	v, err := obj.Compute(student, zbar, labels, n, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := T * T * kl / float64(n); math.Abs(v.Soft-want) > 1e-5*want {
		t.Fatalf("loss with ensemble logits %v, want T²·KL(p̄‖s) = %v", v.Soft, want)
	}

	// Averaging logits is refused; single teachers are available.
	if err := s.Logits(idx, nil, n, zbar); err == nil || !strings.Contains(err.Error(), "Ensemble") {
		t.Errorf("Logits with 2 teachers: %v, want a pointer to Ensemble", err)
	}
	t1, err := s.Teacher(1)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n*4)
	if err := t1.Logits(idx, nil, n, got); err != nil || !slices.Equal(got, z1) {
		t.Fatalf("Teacher(1) logits differ from teacher 1's (err %v)", err)
	}
	if _, err := s.Teacher(2); err == nil {
		t.Error("Teacher(2) of 2 succeeded")
	}
	if _, err := s.Ensemble(0); err == nil {
		t.Error("Ensemble(0) succeeded")
	}
	var _ train.Teacher = ens
}

func TestLogMeanTrick(t *testing.T) {
	// T·log p̄ reproduces p̄ at temperature T, including probabilities
	// that underflow.
	for _, T := range []float64{0.5, 1, 4, 20} {
		for _, p := range [][]float64{
			{0.25, 0.25, 0.5},
			{1, 0, 0},
			{1e-30, 1 - 2e-30, 1e-30},
			{0.7, 0.2, 0.1},
		} {
			z := make([]float32, len(p))
			for j, v := range p {
				z[j] = float32(T * math.Log(max(v, math.SmallestNonzeroFloat64)))
			}
			back := loss.Softmax(z, T)
			for j := range p {
				if math.Abs(back[j]-p[j]) > 1e-6*max(p[j], 1e-6) {
					t.Errorf("T=%v p=%v: softmax(z/T) = %v", T, p, back)
				}
			}
		}
	}
}

func TestEnsembleOfOneIsRawLogits(t *testing.T) {
	d := toyData(8, 6, 6, 3)
	ts, ls := toyTeachers(d, 1)
	s := mustBuild(t, toySpec(d, t.TempDir(), 0), ts)
	e, _ := s.Ensemble(4)
	got := make([]float32, 8*3)
	if err := e.Logits(allRows(8), nil, 8, got); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, 8*3)
	ls[0].Forward(d.X, 8, want)
	if !slices.Equal(got, want) {
		t.Fatal("Ensemble of one teacher altered its logits")
	}
}

func TestMixupLabels(t *testing.T) {
	d := toyData(12, 6, 6, 4)
	ts, _ := toyTeachers(d, 1)
	spec := toySpec(d, t.TempDir(), 4)
	spec.Augment = augment.Config{Mixup: 1}
	s := mustBuild(t, spec, ts)
	y := make([]int32, s.Len())
	x := make([]float32, s.Len()*36)
	s.Gather(allRows(s.Len()), x, y)
	partnerWins := 0
	for r := range s.Len() {
		i, c, m := s.Origin(r)
		if i != r%12 || c != r/12 {
			t.Fatalf("Origin(%d) = %d, %d", r, i, c)
		}
		if c > 0 && !m.Mixed() {
			t.Fatalf("row %d (copy %d) not mixed", r, c)
		}
		if want := d.Y[m.Dominant(i)]; y[r] != want {
			t.Fatalf("row %d: label %d, want %d (mix %+v)", r, y[r], want, m)
		}
		if m.Dominant(i) != i {
			partnerWins++
		}
	}
	if partnerWins == 0 {
		t.Error("no row took its partner's label")
	}
}

func TestUnlabelled(t *testing.T) {
	d := toyData(10, 6, 6, 3)
	d.Y = nil
	ts, ls := toyTeachers(d, 2)
	spec := toySpec(d, t.TempDir(), 1)
	spec.Unlabelled = true
	s := mustBuild(t, spec, ts)
	n := s.Len()
	x := make([]float32, n*36)
	y := make([]int32, n)
	s.Gather(allRows(n), x, y)
	z0, z1 := make([]float32, n*3), make([]float32, n*3)
	ls[0].Forward(x, n, z0)
	ls[1].Forward(x, n, z1)
	w := s.Weights()
	for r := range n {
		a, b := softmaxT(z0[r*3:(r+1)*3], 1), softmaxT(z1[r*3:(r+1)*3], 1)
		best := 0
		for j := range 3 {
			if w[0]*a[j]+w[1]*b[j] > w[0]*a[best]+w[1]*b[best] {
				best = j
			}
		}
		if y[r] != int32(best) {
			t.Fatalf("row %d: label %d, want the ensemble's argmax %d", r, y[r], best)
		}
	}
	// Reopening works without labels.
	if _, err := Open(spec.Dir, s.Key(), d); err != nil {
		t.Fatal(err)
	}
}

func TestFeatures(t *testing.T) {
	d := toyData(10, 6, 6, 3)
	for _, dtype := range []string{Float32, Float16} {
		t.Run(dtype, func(t *testing.T) {
			ts, ls := toyTeachers(d, 2)
			ts[1].Features = []FeatureSpec{{Name: "fc1", Shape: []int{5}}, {Name: "pool", Shape: []int{2, 2}}}
			ts[1].FeatureFn = func(x []float32, n int, out map[string][]float32) error {
				for r := range n {
					for k := range 5 {
						out["fc1"][r*5+k] = 2*x[r*36+k] + 0.1
					}
					for k := range 4 {
						out["pool"][r*4+k] = -x[r*36+10+k]
					}
				}
				return nil
			}
			spec := toySpec(d, t.TempDir(), 1)
			spec.Dtype = dtype
			spec.ShardBytes = 300
			s := mustBuild(t, spec, ts)
			n := s.Len()
			idx := allRows(n)
			slices.Reverse(idx)
			x := make([]float32, n*36)
			s.Gather(idx, x, nil)
			got := make([]float32, n*5)
			if err := s.Features(1, "fc1", idx, got); err != nil {
				t.Fatal(err)
			}
			pool := make([]float32, n*4)
			if err := s.Features(1, "pool", idx, pool); err != nil {
				t.Fatal(err)
			}
			tol := 0.0
			if dtype == Float16 {
				tol = 1.0 / 1024
			}
			for k := range n {
				for j := range 5 {
					want := float64(2*x[k*36+j] + 0.1) // as FeatureFn computes it
					if math.Abs(float64(got[k*5+j])-want) > tol*math.Abs(want) {
						t.Fatalf("row %d fc1[%d] = %v, want %v", idx[k], j, got[k*5+j], want)
					}
				}
				for j := range 4 {
					if want := -float64(x[k*36+10+j]); math.Abs(float64(pool[k*4+j])-want) > tol*math.Abs(want) {
						t.Fatalf("row %d pool[%d] = %v, want %v", idx[k], j, pool[k*4+j], want)
					}
				}
			}
			// Logits are stored alongside, and approximately in float16.
			z := make([]float32, n*3)
			ls[0].Forward(x, n, z)
			t0, _ := s.Teacher(0)
			got3 := make([]float32, n*3)
			if err := t0.Logits(idx, nil, n, got3); err != nil {
				t.Fatal(err)
			}
			for i := range z {
				if math.Abs(float64(got3[i]-z[i])) > tol*math.Abs(float64(z[i]))+1e-7 {
					t.Fatalf("logit %d = %v, want %v", i, got3[i], z[i])
				}
			}
			if err := s.Features(0, "fc1", idx, got); err == nil {
				t.Error("teacher 0 has no features, but Features succeeded")
			}
			if err := s.Features(1, "logits", idx, got); err == nil {
				t.Error(`Features(1, "logits") succeeded`)
			}
		})
	}
}

func TestDescribeErrors(t *testing.T) {
	d := toyData(8, 6, 6, 3)
	ts, _ := toyTeachers(d, 1)
	for _, tc := range []struct {
		name string
		edit func(*BuildSpec, []Teacher) []Teacher
		want string
	}{
		{"nil data", func(s *BuildSpec, ts []Teacher) []Teacher { s.Data = nil; return ts }, "Data is nil"},
		{"no teachers", func(s *BuildSpec, ts []Teacher) []Teacher { return nil }, "between 1 and 64 teachers"},
		{"copies without augmentation", func(s *BuildSpec, ts []Teacher) []Teacher { s.Augment = augment.Config{}; return ts }, "no augmentation is on"},
		{"bad augmentation", func(s *BuildSpec, ts []Teacher) []Teacher { s.Augment.Rotate = 400; return ts }, "rotate must be"},
		{"shift too big", func(s *BuildSpec, ts []Teacher) []Teacher { s.Augment.Shift = 6; return ts }, "smaller than the image"},
		{"bad hash", func(s *BuildSpec, ts []Teacher) []Teacher { ts[0].SHA256 = "abc"; return ts }, `sha256 "abc" is not 64`},
		{"negative weight", func(s *BuildSpec, ts []Teacher) []Teacher { ts[0].Weight = -1; return ts }, "weight must be finite and >= 0"},
		{"no model", func(s *BuildSpec, ts []Teacher) []Teacher { ts[0].Model = nil; return ts }, "has no model"},
		{"classes mismatch", func(s *BuildSpec, ts []Teacher) []Teacher { s.Classes = 5; return ts }, "give 5 logits but dataset"},
		{"bad dtype", func(s *BuildSpec, ts []Teacher) []Teacher { s.Dtype = "int8"; return ts }, `dtype must be "float32" or "float16"`},
		{"features without fn", func(s *BuildSpec, ts []Teacher) []Teacher {
			ts[0].Features = []FeatureSpec{{"h", []int{3}}}
			return ts
		}, "no FeatureFn"},
		{"duplicate feature", func(s *BuildSpec, ts []Teacher) []Teacher {
			ts[0].Features = []FeatureSpec{{"h", []int{3}}, {"h", []int{2}}}
			ts[0].FeatureFn = func([]float32, int, map[string][]float32) error { return nil }
			return ts
		}, `feature "h" is listed twice`},
		{"reserved feature name", func(s *BuildSpec, ts []Teacher) []Teacher {
			ts[0].Features = []FeatureSpec{{"logits", []int{3}}}
			ts[0].FeatureFn = func([]float32, int, map[string][]float32) error { return nil }
			return ts
		}, "is reserved"},
		{"label out of range", func(s *BuildSpec, ts []Teacher) []Teacher {
			dd := *s.Data
			dd.Y = slices.Clone(dd.Y)
			dd.Y[3] = 7
			s.Data = &dd
			return ts
		}, "label 7 of example 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := toySpec(d, t.TempDir(), 1)
			got := tc.edit(&spec, slices.Clone(ts))
			_, err := Build(t.Context(), spec, got, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestTeacherFailures(t *testing.T) {
	d := toyData(8, 6, 6, 3)
	for _, tc := range []struct {
		name   string
		setup  func(*linear, *BuildSpec)
		want   string
		target error
	}{
		{"forward error", func(l *linear, _ *BuildSpec) { l.fail = os.ErrDeadlineExceeded }, `teacher 0 ("t0") on rows [0, 7)`, os.ErrDeadlineExceeded},
		{"NaN logit", func(l *linear, _ *BuildSpec) { l.poison = float32(math.NaN()) }, "logit 0 of row 0 is NaN", nil},
		{"float16 overflow", func(l *linear, s *BuildSpec) { l.poison = 1e6; s.Dtype = Float16 }, "does not fit float16", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, ls := toyTeachers(d, 1)
			spec := toySpec(d, t.TempDir(), 1)
			tc.setup(ls[0], &spec)
			_, err := Build(t.Context(), spec, ts, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want an error containing %q", err, tc.want)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("Build: %v does not wrap %v", err, tc.target)
			}
			// Nothing partial is left that looks complete.
			ents, _ := os.ReadDir(filepath.Join(spec.Dir, Key(mustDescribe(t, spec, ts))))
			for _, e := range ents {
				if e.Name() == manifestName || strings.HasPrefix(e.Name(), ".") {
					t.Errorf("failed build left %s", e.Name())
				}
			}
		})
	}
}

func TestHashFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "m.json"), filepath.Join(dir, "m.safetensors")
	os.WriteFile(a, []byte("abc"), 0o644)
	os.WriteFile(b, []byte("weights"), 0o644)
	h, err := HashFiles(a)
	// sha256("abc"), as sha256sum prints it.
	if err != nil || h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashFiles(a) = %s, %v", h, err)
	}
	h2, err := HashFiles(a, b)
	if err != nil || !isHash(h2) || h2 == h {
		t.Fatalf("HashFiles(a, b) = %s, %v", h2, err)
	}
	if h3, _ := HashFiles(b, a); h3 == h2 {
		t.Error("HashFiles ignores the order of files")
	}
	if _, err := HashFiles(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("HashFiles(missing) = %v", err)
	}
	if _, err := HashFiles(); err == nil {
		t.Error("HashFiles() succeeded")
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg-test")
	t.Setenv("HOME", "/tmp/home-test")
	d, err := DefaultDir()
	if err != nil {
		t.Skip("no user cache directory here:", err)
	}
	if !strings.HasSuffix(d, filepath.Join("distill", "transfer")) {
		t.Errorf("DefaultDir() = %s", d)
	}
}

func TestFloat16(t *testing.T) {
	// Every half converts to float32 and back unchanged.
	for h := range 1 << 16 {
		f := f16ToF32(uint16(h))
		back, ok := f32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if !ok || back != uint16(h) {
			t.Fatalf("%#04x → %v → %#04x (ok %v)", h, f, back, ok)
		}
	}
	// Rounding picks the nearest half, ties to even.
	for _, tc := range []struct {
		in   float32
		want uint16
		ok   bool
	}{
		{1, 0x3c00, true},
		{-2, 0xc000, true},
		{65504, 0x7bff, true},
		{65519, 0x7bff, true},  // below the halfway point to 65536
		{65520, 0x7c00, false}, // rounds up past the largest half
		{1e6, 0x7c00, false},
		{1 + 0x1p-11, 0x3c00, true},           // tie → even (down)
		{1 + 3*0x1p-11, 0x3c02, true},         // tie → even (up)
		{0x1p-24, 0x0001, true},               // smallest subnormal
		{0x1p-25, 0x0000, true},               // tie → even (zero)
		{0x1p-14 - 0x1p-25, 0x0400, true},     // rounds up to the smallest normal
		{float32(math.Inf(-1)), 0xfc00, true}, //
		{float32(math.Copysign(0, -1)), 0x8000, true},
	} {
		got, ok := f32ToF16(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("f32ToF16(%v) = %#04x, %v; want %#04x, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
