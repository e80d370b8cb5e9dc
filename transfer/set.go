package transfer

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/internal/fileio"
	"github.com/distill-dev/distill/loss"
	"github.com/distill-dev/distill/train"
)

// Set is an opened transfer set: N base examples, each as itself and as K
// augmented copies, with every teacher's stored outputs. Row r is copy
// r / N of base example r % N.
//
// Set is a train.Source over the rows (its inputs are recomputed from the
// base data, its labels are the base labels) and, with a single teacher,
// a train.Teacher serving the stored logits by row index. Ensemble serves
// several teachers. A Set is safe for concurrent use.
//
// Shards are read, and their checksums verified, the first time one of
// their rows is asked for; Verify reads them all up front. The teachers'
// logits of the shards read stay in memory (N·(K+1)·teachers·classes·4
// bytes); features are read from the files when asked for.
type Set struct {
	st      *store
	weights []float64 // normalised to sum 1
	labels  []int32   // hard labels of an unlabelled set, per row
}

var (
	_ train.Source         = (*Set)(nil)
	_ train.IndexedTeacher = (*Set)(nil)
	_ train.IndexedTeacher = teacherView{}
	_ train.IndexedTeacher = ensemble{}
)

// store is what the views of one set (WithWeights) share.
type store struct {
	dir     string
	d       Description
	base    *data.Dataset
	pipe    *augment.Pipeline // nil when there are no copies
	n       int               // base examples
	size    int               // values per example
	classes int
	nt      int // teachers
	esize   int

	man    *Manifest
	shards []shardState
}

// shardState is one shard's lazily loaded logits.
type shardState struct {
	once   sync.Once
	logits []float32 // rows × nt × classes
	err    error
}

// newStore prepares a store for d over base, without shards.
func newStore(dir string, d Description, base *data.Dataset) (*store, error) {
	size, err := shapeSize(d.Source.Shape)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	st := &store{dir: dir, d: d, base: base, n: d.Source.Examples, size: size,
		classes: d.Classes, nt: len(d.Teachers), esize: elemSize(d.Dtype)}
	if d.Copies > 0 {
		if st.pipe, err = augment.New(d.Augment, d.Seed, d.Source.Shape); err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
	}
	return st, nil
}

// setManifest attaches the shards of a complete set.
func (st *store) setManifest(m *Manifest) {
	st.man = m
	st.shards = make([]shardState, len(m.Shards))
}

// Open opens the complete transfer set dir/key, built from base. It
// checks the manifest (format, description, key, layout, shard list),
// that every shard file exists with the right size, and that base is the
// data the set was built from (by content hash); shard checksums are
// verified as the shards are first read, or by Verify. The weights are
// those recorded at build time; see WithWeights. An unlabelled set is
// verified in full, to compute its hard labels.
//
// Errors name the file at fault and wrap ErrCorrupt for damaged files
// and fs.ErrNotExist for a missing manifest (an incomplete set).
func Open(dir, key string, base *data.Dataset) (*Set, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	m, err := readManifest(filepath.Join(dir, key))
	if err != nil {
		return nil, err
	}
	if m.Key != key {
		return nil, fmt.Errorf("transfer: %s: %w", filepath.Join(dir, key, manifestName), corrupt("manifest is for key %s", m.Key))
	}
	src, err := DescribeData(base, m.Description.Source.Labelled)
	if err != nil {
		return nil, err
	}
	return openWith(filepath.Join(dir, key), m, base, src, weightsOf(m.Description))
}

// readManifest reads and checks dir's manifest.
func readManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, manifestName)
	f, err := fileio.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transfer: the set in %s is missing or incomplete: %w", dir, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("transfer: read %s: %w", path, err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("transfer: %s: %w", path, corrupt("manifest is larger than %d bytes", maxManifestSize))
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("transfer: %s: %w", path, err)
	}
	return m, nil
}

// openWith opens the set in dir described by m, over base whose
// description is src.
func openWith(dir string, m *Manifest, base *data.Dataset, src SourceInfo, weights []float64) (*Set, error) {
	want := m.Description.Source
	if src.SHA256 != want.SHA256 || src.Examples != want.Examples || ints(src.Shape) != ints(want.Shape) {
		return nil, fmt.Errorf("transfer: the set in %s was built from dataset %q (%d examples of shape %v, sha256 %s), not from the given %q (%d examples of shape %v, sha256 %s)",
			dir, want.Name, want.Examples, want.Shape, want.SHA256, src.Name, src.Examples, src.Shape, src.SHA256)
	}
	for _, sh := range m.Shards {
		path := filepath.Join(dir, sh.File)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
		if fi.Size() != sh.Bytes {
			return nil, fmt.Errorf("transfer: %s: %w", path, corrupt("file is %d bytes, the manifest says %d", fi.Size(), sh.Bytes))
		}
	}
	st, err := newStore(dir, m.Description, base)
	if err != nil {
		return nil, err
	}
	st.setManifest(m)
	return newSet(st, weights)
}

// newSet returns a view of st with the given teacher weights.
func newSet(st *store, weights []float64) (*Set, error) {
	w, err := normalise(weights, st.nt)
	if err != nil {
		return nil, err
	}
	s := &Set{st: st, weights: w}
	if !st.d.Source.Labelled {
		if err := s.computeLabels(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// normalise checks teacher weights and scales them to sum to 1; all
// zeros weigh the teachers equally.
func normalise(w []float64, nt int) ([]float64, error) {
	if len(w) != nt {
		return nil, fmt.Errorf("transfer: %d weights for %d teachers", len(w), nt)
	}
	var sum float64
	for i, v := range w {
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("transfer: weight %d is %v; weights must be finite and >= 0", i, v)
		}
		sum += v
	}
	out := make([]float64, nt)
	for i, v := range w {
		if sum == 0 {
			out[i] = 1 / float64(nt)
		} else {
			out[i] = v / sum
		}
	}
	return out, nil
}

// computeLabels sets an unlabelled set's hard labels: the class of
// highest ensemble probability (temperature 1) of each row.
func (s *Set) computeLabels() error {
	if err := s.Verify(); err != nil {
		return err
	}
	rows := s.Len()
	s.labels = make([]int32, rows)
	p := make([]float64, s.st.classes)
	for g := range rows {
		if err := s.mixture(g, 1, p); err != nil {
			return err
		}
		best := 0
		for j, v := range p {
			if v > p[best] {
				best = j
			}
		}
		s.labels[g] = int32(best)
	}
	return nil
}

// WithWeights returns a view of the set whose ensemble uses the given
// teacher weights (>= 0, one per teacher, scaled to sum to 1; all zeros
// weigh equally). The views share the loaded shards.
func (s *Set) WithWeights(w []float64) (*Set, error) {
	return newSet(s.st, w)
}

// Weights returns the teachers' weights, summing to 1.
func (s *Set) Weights() []float64 { return append([]float64(nil), s.weights...) }

// Len returns the number of rows, N × (K+1).
func (s *Set) Len() int { return s.st.n * (s.st.d.Copies + 1) }

// Examples returns N, the number of base examples.
func (s *Set) Examples() int { return s.st.n }

// Copies returns K, the number of augmented copies of each base example.
func (s *Set) Copies() int { return s.st.d.Copies }

// Classes returns the number of logits per teacher.
func (s *Set) Classes() int { return s.st.classes }

// Teachers returns the number of teachers.
func (s *Set) Teachers() int { return s.st.nt }

// Key returns the set's key.
func (s *Set) Key() string { return s.st.man.Key }

// Dir returns the directory the set is stored in.
func (s *Set) Dir() string { return s.st.dir }

// Description returns what determined the set.
func (s *Set) Description() Description {
	m := s.Manifest()
	return m.Description
}

// Manifest returns a copy of the set's manifest.
func (s *Set) Manifest() Manifest {
	m := *s.st.man
	d := &m.Description
	d.Source.Shape = append([]int(nil), d.Source.Shape...)
	d.Teachers = append([]TeacherInfo(nil), d.Teachers...)
	for i := range d.Teachers {
		d.Teachers[i].Features = cloneFeatures(d.Teachers[i].Features)
	}
	m.Columns = append([]Column(nil), m.Columns...)
	for i := range m.Columns {
		m.Columns[i].Shape = append([]int(nil), m.Columns[i].Shape...)
	}
	m.Shards = append([]ShardInfo(nil), m.Shards...)
	return m
}

// Origin returns the base example and copy number of row r, and how it
// was mixed (mixup).
func (s *Set) Origin(r int) (example, copy int, mix augment.Mix) {
	if r < 0 || r >= s.Len() {
		panic(fmt.Sprintf("transfer: Origin(%d) outside [0, %d)", r, s.Len()))
	}
	example, copy = r%s.st.n, r/s.st.n
	mix = augment.Mix{Partner: -1, Lambda: 1}
	if copy > 0 {
		mix = s.st.pipe.Params(example, copy, s.st.n).Mix
	}
	return example, copy, mix
}

// Gather writes the inputs of rows idx into x (len(idx) × input size) and
// their hard labels into y (which may be nil). An augmented row's input is
// recomputed from the base data, bit for bit what the teachers saw. Its
// label is its base example's; a mixed row takes the label of the example
// with the larger share (augment.Mix.Dominant); a row of an unlabelled
// set takes the class the teacher ensemble rates most probable.
//
// Like data.Dataset.Gather, Gather panics on a violated precondition (x
// or y too short, an index outside [0, Len())), which is a bug.
func (s *Set) Gather(idx []int, x []float32, y []int32) {
	if len(x) < len(idx)*s.st.size {
		panic(fmt.Sprintf("transfer: Gather of %d rows of size %d needs len(x) >= %d, have %d", len(idx), s.st.size, len(idx)*s.st.size, len(x)))
	}
	if y != nil && len(y) < len(idx) {
		panic(fmt.Sprintf("transfer: Gather of %d rows needs len(y) >= %d, have %d", len(idx), len(idx), len(y)))
	}
	rows := s.Len()
	for k, r := range idx {
		if r < 0 || r >= rows {
			panic(fmt.Sprintf("transfer: Gather index idx[%d] = %d out of range [0, %d)", k, r, rows))
		}
	}
	mixes := s.st.inputs(idx, x, y != nil)
	if y == nil {
		return
	}
	for k, r := range idx {
		switch {
		case s.labels != nil:
			y[k] = s.labels[r]
		default:
			y[k] = s.st.base.Y[mixes[k].Dominant(r%s.st.n)]
		}
	}
}

// inputs writes the inputs of rows idx into x and, if needMix, returns
// how each was mixed. Rows are independent, so large batches are
// computed in parallel without changing a bit.
func (st *store) inputs(idx []int, x []float32, needMix bool) []augment.Mix {
	var mixes []augment.Mix
	if needMix {
		mixes = make([]augment.Mix, len(idx))
	}
	if st.pipe != nil {
		st.pipe.Rows(x, st.base.X[:st.n*st.size], idx, mixes)
		return mixes
	}
	for k, r := range idx { // no copies: the base examples themselves
		copy(x[k*st.size:(k+1)*st.size], st.base.X[r*st.size:(r+1)*st.size])
		if mixes != nil {
			mixes[k] = augment.Mix{Partner: -1, Lambda: 1}
		}
	}
	return mixes
}

// Logits implements train.Teacher for a set with one teacher: it writes
// the stored logits of rows idx into out (n × classes), ignoring x. With
// several teachers it fails: use Ensemble (or Teacher for one of them),
// since averaging logits is not averaging the teachers' predictions.
func (s *Set) Logits(idx []int, _ []float32, n int, out []float32) error {
	if s.st.nt != 1 {
		return fmt.Errorf("transfer: the set has %d teachers; use Ensemble(T) for their combined soft targets or Teacher(i) for one", s.st.nt)
	}
	return s.teacherLogits(0, idx, n, out)
}

// IndexedLogits is Logits without the inputs (train.IndexedTeacher).
func (s *Set) IndexedLogits(idx []int, n int, out []float32) error {
	return s.Logits(idx, nil, n, out)
}

// Teacher returns a train.Teacher serving teacher t's stored logits.
func (s *Set) Teacher(t int) (train.Teacher, error) {
	if t < 0 || t >= s.st.nt {
		return nil, fmt.Errorf("transfer: teacher %d outside [0, %d)", t, s.st.nt)
	}
	return teacherView{s, t}, nil
}

type teacherView struct {
	s *Set
	t int
}

func (v teacherView) Logits(idx []int, _ []float32, n int, out []float32) error {
	return v.s.teacherLogits(v.t, idx, n, out)
}

func (v teacherView) IndexedLogits(idx []int, n int, out []float32) error {
	return v.s.teacherLogits(v.t, idx, n, out)
}

// teacherLogits copies teacher t's logits of rows idx[:n] into out.
func (s *Set) teacherLogits(t int, idx []int, n int, out []float32) error {
	c := s.st.classes
	if err := s.checkRequest(idx, n, len(out), c); err != nil {
		return err
	}
	for k, r := range idx[:n] {
		z, err := s.st.rowLogits(r)
		if err != nil {
			return err
		}
		copy(out[k*c:(k+1)*c], z[t*c:(t+1)*c])
	}
	return nil
}

// checkRequest checks a read of n rows idx into out of width values each.
func (s *Set) checkRequest(idx []int, n, out, width int) error {
	if n < 0 || n > len(idx) {
		return fmt.Errorf("transfer: %d rows requested with %d indices", n, len(idx))
	}
	if out < n*width {
		return fmt.Errorf("transfer: %d rows of %d values need an output of %d, have %d", n, width, n*width, out)
	}
	rows := s.Len()
	for k, r := range idx[:n] {
		if r < 0 || r >= rows {
			return fmt.Errorf("transfer: row idx[%d] = %d outside [0, %d)", k, r, rows)
		}
	}
	return nil
}

// SoftTargets writes, for each row in idx, the teachers' weighted mean of
// softmax(logits / T) into out (len(idx) × classes).
func (s *Set) SoftTargets(idx []int, T float64, out []float32) error {
	if err := loss.CheckTemperature(T); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	c := s.st.classes
	if err := s.checkRequest(idx, len(idx), len(out), c); err != nil {
		return err
	}
	p := make([]float64, c)
	for k, r := range idx {
		if err := s.mixture(r, T, p); err != nil {
			return err
		}
		for j, v := range p {
			out[k*c+j] = float32(v)
		}
	}
	return nil
}

// mixture writes p̄ = Σ_t w_t·softmax(z_t / T) of row r into p.
func (s *Set) mixture(r int, T float64, p []float64) error {
	z, err := s.st.rowLogits(r)
	if err != nil {
		return err
	}
	c := s.st.classes
	rows := make([][]float32, len(s.weights))
	for t := range rows {
		rows[t] = z[t*c : (t+1)*c]
	}
	loss.Mixture(rows, s.weights, T, p)
	return nil
}

// Ensemble returns a train.Teacher that gives the teacher ensemble's soft
// targets at temperature T in the form the loss consumes, logits.
//
// With one teacher these are its stored logits. With several, the soft
// target is the weighted mean of the teachers' softened predictions,
// p̄ = Σ_t w_t·softmax(z_t / T), and Logits returns
//
//	z̄ = T · log p̄.
//
// z̄ is a valid logit vector whose softmax at temperature T is exactly p̄:
// softmax(z̄ / T)_j = exp(log p̄_j) / Σ_k exp(log p̄_k) = p̄_j / Σ_k p̄_k =
// p̄_j, since p̄ sums to 1. So a loss that softens teacher logits at T
// (loss.Objective) distils from the ensemble's mean prediction unchanged;
// it must use the same T as passed here. (Averaging the logits instead
// would soften a different distribution, the normalised geometric mean of
// the teachers' predictions.) See loss.EnsembleLogits.
func (s *Set) Ensemble(T float64) (train.Teacher, error) {
	if err := loss.CheckTemperature(T); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	return ensemble{s, T}, nil
}

type ensemble struct {
	s *Set
	T float64
}

func (e ensemble) IndexedLogits(idx []int, n int, out []float32) error {
	return e.Logits(idx, nil, n, out)
}

func (e ensemble) Logits(idx []int, _ []float32, n int, out []float32) error {
	s := e.s
	if s.st.nt == 1 {
		return s.teacherLogits(0, idx, n, out)
	}
	c := s.st.classes
	if err := s.checkRequest(idx, n, len(out), c); err != nil {
		return err
	}
	p := make([]float64, c)
	for k, r := range idx[:n] {
		if err := s.mixture(r, e.T, p); err != nil {
			return err
		}
		for j, v := range p {
			out[k*c+j] = float32(e.T * math.Log(max(v, math.SmallestNonzeroFloat64)))
		}
	}
	return nil
}

// Features writes teacher t's stored feature name of rows idx into out
// (len(idx) × the feature's size), reading them from the shard files.
func (s *Set) Features(t int, name string, idx []int, out []float32) error {
	var col *Column
	for i := range s.st.man.Columns {
		if c := &s.st.man.Columns[i]; c.Teacher == t && c.Name == name && name != logitsColumn {
			col = c
		}
	}
	if col == nil {
		return fmt.Errorf("transfer: teacher %d has no stored feature %q", t, name)
	}
	if err := s.checkRequest(idx, len(idx), len(out), col.Size); err != nil {
		return err
	}
	files := map[int]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	es := s.st.esize
	buf := make([]byte, col.Size*es)
	rowBytes := int64(s.st.man.Width * es)
	for k, r := range idx {
		sh := s.st.shardOf(r)
		if _, err := s.st.load(sh); err != nil {
			return err
		}
		info := s.st.man.Shards[sh]
		f := files[sh]
		if f == nil {
			var err error
			if f, err = fileio.Open(filepath.Join(s.st.dir, info.File)); err != nil {
				return fmt.Errorf("transfer: %w", err)
			}
			files[sh] = f
		}
		off := headerSize + int64(r-info.First)*rowBytes + int64(col.Offset*es)
		if _, err := f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("transfer: %s: %w", f.Name(), shortRead(err))
		}
		vals := out[k*col.Size : (k+1)*col.Size]
		decodeValues(vals, buf, es)
		if err := s.st.checkRow(vals, r, t, col.Size, "value of feature "+strconv.Quote(name)); err != nil {
			return fmt.Errorf("transfer: %s: %w", f.Name(), err)
		}
	}
	return nil
}

// checkRow reports the first NaN or infinity among row r's values (each
// teacher's width values, starting with teacher t's) as corruption,
// naming the teacher, the row and the value.
func (st *store) checkRow(vals []float32, r, t, width int, what string) error {
	for i, v := range vals {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			ti := t + i/width
			return corrupt("row %d: %s %s %d is %v; stored teacher outputs must be finite (delete the set to rebuild it)",
				r, teacherLabel(ti, st.d.Teachers[ti].Name), what, i%width, v)
		}
	}
	return nil
}

// Verify reads every shard not read yet and checks its checksums,
// reporting every damaged file.
func (s *Set) Verify() error {
	var errs []error
	for sh := range s.st.shards {
		if _, err := s.st.load(sh); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// shardOf returns the shard holding row r.
func (st *store) shardOf(r int) int {
	sh := st.man.Shards
	return sort.Search(len(sh), func(i int) bool { return sh[i].First+sh[i].Rows > r }) // first shard ending after r
}

// rowLogits returns all teachers' logits of row r (nt × classes values).
func (st *store) rowLogits(r int) ([]float32, error) {
	sh := st.shardOf(r)
	z, err := st.load(sh)
	if err != nil {
		return nil, err
	}
	w := st.nt * st.classes
	off := (r - st.man.Shards[sh].First) * w
	return z[off : off+w], nil
}

// load reads shard sh once, verifying it against the manifest, and keeps
// its logits. A failure is remembered and returned on every later call.
func (st *store) load(sh int) ([]float32, error) {
	s := &st.shards[sh]
	s.once.Do(func() {
		info := st.man.Shards[sh]
		path := filepath.Join(st.dir, info.File)
		w := st.nt * st.classes
		logits := make([]float32, info.Rows*w)
		hdr := shardHeader{dtype: dtypeCode(st.d.Dtype), first: uint64(info.First), rows: uint64(info.Rows), width: uint64(st.man.Width)}
		sum, err := verifyShard(path, info.Bytes, &hdr, func(k int, b []byte) error {
			row := logits[k*w : (k+1)*w]
			decodeValues(row, b, st.esize)
			// Build refuses non-finite outputs, but a set written
			// otherwise would turn into NaN gradients far from here.
			return st.checkRow(row, info.First+k, 0, st.classes, "logit")
		})
		if err == nil && hexSum(sum) != info.SHA256 {
			err = fmt.Errorf("transfer: %s: %w", path, corrupt("file's SHA-256 %s differs from the manifest's %s", hexSum(sum), info.SHA256))
		}
		s.logits, s.err = logits, err
		if err != nil {
			s.logits = nil
		}
	})
	return s.logits, s.err
}
