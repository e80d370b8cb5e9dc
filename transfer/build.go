package transfer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/internal/fileio"
)

// DefaultBatchSize is the number of rows passed to a teacher's Forward at
// once when BuildSpec leaves BatchSize at 0.
const DefaultBatchSize = 256

// Forwarder computes inference-mode logits: n examples laid out row-major
// in x, n × classes logits written to out. backend.Model implements it.
type Forwarder interface {
	Forward(x []float32, n int, out []float32) error
}

// FeatureFn computes a teacher's feature tensors for n examples laid out
// row-major in x. out maps each of the teacher's FeatureSpec names to a
// buffer of n × that feature's size values, to be filled.
type FeatureFn func(x []float32, n int, out map[string][]float32) error

// Teacher is one teacher: its identity, which goes into the set's key
// and manifest, and the model that computes its outputs.
type Teacher struct {
	// Name labels the teacher in messages and in the manifest.
	Name string
	// SHA256 is the hex SHA-256 of the teacher's weights, e.g. from
	// HashFiles(model.Paths(checkpoint)). A retrained teacher gets a new
	// hash and so a new set.
	SHA256 string
	// Weight is the teacher's weight in the ensemble, >= 0. If every
	// teacher's weight is 0, they are weighted equally.
	Weight float64
	// Model computes the teacher's logits.
	Model Forwarder
	// Features lists feature tensors to store besides the logits; with
	// it, FeatureFn computes them. Both may be empty.
	Features  []FeatureSpec
	FeatureFn FeatureFn
}

// BuildSpec says what transfer set to build and where.
type BuildSpec struct {
	// Data holds the base examples (training split or unlabelled set).
	Data *data.Dataset
	// Unlabelled ignores Data.Y (which may then be nil): the set's hard
	// labels become the teacher ensemble's predictions.
	Unlabelled bool
	// Classes is the number of logits per teacher; 0 means Data.Classes.
	Classes int
	// Copies is K: each base example appears as itself (copy 0) and as K
	// augmented copies made by Augment with Seed.
	Copies  int
	Augment augment.Config
	Seed    int64
	// Dtype is Float32 (default, when empty) or Float16.
	Dtype string
	// Dir is the cache root; the set goes into Dir/<key>. Cache fills it.
	Dir string
	// ShardBytes bounds each shard file's size; 0 means
	// DefaultShardBytes. A shard holds at least one row. It does not
	// affect the key: resuming with another value recomputes the shards.
	ShardBytes int64
	// BatchSize is the number of rows per teacher Forward call; 0 means
	// DefaultBatchSize.
	BatchSize int
}

// Describe returns the Description that spec and teachers determine,
// hashing the base data, and checks it. Key(Describe(…)) is the key
// Build will store the set under.
func Describe(spec BuildSpec, teachers []Teacher) (Description, error) {
	if spec.Data == nil {
		return Description{}, errors.New("transfer: BuildSpec.Data is nil")
	}
	src, err := DescribeData(spec.Data, !spec.Unlabelled)
	if err != nil {
		return Description{}, err
	}
	d := Description{
		Source:  src,
		Classes: spec.Classes,
		Copies:  spec.Copies,
		Seed:    spec.Seed,
		Augment: spec.Augment,
		Dtype:   spec.Dtype,
	}
	if d.Classes == 0 {
		d.Classes = spec.Data.Classes
	}
	if d.Dtype == "" {
		d.Dtype = Float32
	}
	if d.Copies == 0 {
		d.Seed, d.Augment = 0, augment.Config{}
	}
	var errs []error
	if src.Labelled && d.Classes != spec.Data.Classes {
		errs = append(errs, fmt.Errorf("the teachers give %d logits but dataset %q has %d classes", d.Classes, spec.Data.Name, spec.Data.Classes))
	}
	for i, t := range teachers {
		d.Teachers = append(d.Teachers, TeacherInfo{
			Name:     t.Name,
			SHA256:   t.SHA256,
			Weight:   t.Weight,
			Features: cloneFeatures(t.Features),
		})
		if t.Model == nil {
			errs = append(errs, fmt.Errorf("%s has no model", teacherLabel(i, t.Name)))
		}
		if len(t.Features) > 0 && t.FeatureFn == nil {
			errs = append(errs, fmt.Errorf("%s lists features but has no FeatureFn", teacherLabel(i, t.Name)))
		}
	}
	if spec.ShardBytes < 0 {
		errs = append(errs, fmt.Errorf("shard bytes must be >= 0, got %d", spec.ShardBytes))
	}
	if spec.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch size must be >= 0, got %d", spec.BatchSize))
	}
	if err := d.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Description{}, fmt.Errorf("transfer: %w", err)
	}
	return d, nil
}

func cloneFeatures(fs []FeatureSpec) []FeatureSpec {
	if len(fs) == 0 {
		return nil
	}
	out := make([]FeatureSpec, len(fs))
	for i, f := range fs {
		out[i] = FeatureSpec{Name: f.Name, Shape: append([]int(nil), f.Shape...)}
	}
	return out
}

// Build computes the transfer set of spec and teachers into
// spec.Dir/<key> and returns it opened. Each row is one example, copy
// r / N of base example r % N; its inputs are made as Set.Gather makes
// them and passed through every teacher, whose logits (and features) are
// stored.
//
// Shards are written atomically one by one and the manifest last. If a
// previous build of the same key was interrupted, its shards whose header
// and checksum verify are kept and only the rest are computed. progress,
// if not nil, is called with the rows done so far and the total, after
// each batch and each kept shard. Build stops with ctx's error when ctx
// is cancelled; the finished shards remain for the next attempt.
//
// Build does not look for a finished set; Cache.GetOrBuild does.
func Build(ctx context.Context, spec BuildSpec, teachers []Teacher, progress func(done, total int)) (*Set, error) {
	d, err := Describe(spec, teachers)
	if err != nil {
		return nil, err
	}
	return build(ctx, spec, teachers, d, progress)
}

// build is Build after Describe.
func build(ctx context.Context, spec BuildSpec, teachers []Teacher, d Description, progress func(done, total int)) (*Set, error) {
	if spec.Dir == "" {
		return nil, errors.New("transfer: BuildSpec.Dir is empty; set the cache directory or use Cache")
	}
	key := Key(d)
	dir := filepath.Join(spec.Dir, key)
	st, err := newStore(dir, d, spec.Data)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("transfer: create %s: %w", dir, err)
	}
	// The manifest marks a complete set: remove any old one before
	// touching shards, so that no reader trusts a set being rebuilt.
	manifestPath := filepath.Join(dir, manifestName)
	if err := os.Remove(manifestPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("transfer: remove stale %s: %w", manifestPath, err)
	}
	removeTemps(dir)

	cols, width := layout(d)
	esize := elemSize(d.Dtype)
	shardLimit := spec.ShardBytes
	if shardLimit == 0 {
		shardLimit = DefaultShardBytes
	}
	rowBytes := int64(width) * int64(esize)
	perShard := int(max(1, min((shardLimit-headerSize-footerSize)/rowBytes, maxRows)))
	rows := d.Rows()
	batch := spec.BatchSize
	if batch == 0 {
		batch = DefaultBatchSize
	}
	b := newBatcher(st, teachers, d, batch)

	var shards []ShardInfo
	done := 0
	report := func() {
		if progress != nil {
			progress(done, rows)
		}
	}
	for first, s := 0, 0; first < rows; first, s = first+perShard, s+1 {
		n := min(perShard, rows-first)
		info := ShardInfo{File: shardName(s), First: first, Rows: n, Bytes: shardBytes(n, width, esize)}
		path := filepath.Join(dir, info.File)
		hdr := shardHeader{dtype: dtypeCode(d.Dtype), first: uint64(first), rows: uint64(n), width: uint64(width)}
		if sum, err := verifyShard(path, info.Bytes, &hdr, nil); err == nil {
			info.SHA256 = hexSum(sum)
			shards = append(shards, info)
			done += n
			report()
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("transfer: build %s: %w", dir, err)
		}
		file := sha256.New()
		err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
			file.Reset()
			return b.writeShard(ctx, w, file, hdr, func(k int) { done = first + k; report() })
		})
		if err != nil {
			return nil, fmt.Errorf("transfer: build %s: %w", dir, err)
		}
		info.SHA256 = fmt.Sprintf("%x", file.Sum(nil))
		shards = append(shards, info)
		done = first + n
	}
	removeStaleShards(dir, len(shards))

	m := &Manifest{Format: formatName, Key: key, Description: d, Rows: rows, Width: width, Columns: cols, Shards: shards}
	doc, err := marshalManifest(m)
	if err != nil {
		return nil, fmt.Errorf("transfer: encode %s: %w", manifestPath, err)
	}
	if err := atomicfile.WriteFile(manifestPath, doc, 0o644); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	st.setManifest(m)
	return newSet(st, weightsOf(d))
}

// verifyShard checks the shard at path: its size, header (against want)
// and checksum, passing rows to row. It returns the SHA-256 of the file.
// Errors name the file.
func verifyShard(path string, size int64, want *shardHeader, row func(k int, b []byte) error) ([32]byte, error) {
	var sum [32]byte
	f, got, err := fileio.OpenSized(path)
	if err != nil {
		return sum, fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()
	if got != size {
		return sum, fmt.Errorf("transfer: %s: %w", path, corrupt("file is %d bytes, the set needs %d", got, size))
	}
	_, sum, err = readShard(f, got, want, row)
	if err != nil {
		return sum, fmt.Errorf("transfer: %s: %w", path, err)
	}
	return sum, nil
}

// tempFile matches the temporary files that atomicfile leaves behind when
// the process dies mid-write.
var tempFile = regexp.MustCompile(`^\.(shard-\d+\.bin|manifest\.json)\.tmp\d*$`)

// removeTemps deletes the temporary files of interrupted writes in dir.
func removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if tempFile.MatchString(e.Name()) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// shardFile matches shard file names.
var shardFile = regexp.MustCompile(`^shard-(\d+)\.bin$`)

// removeStaleShards deletes shard files numbered n or more, left by an
// earlier attempt that used smaller shards.
func removeStaleShards(dir string, n int) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if m := shardFile.FindStringSubmatch(e.Name()); m != nil {
			if s, err := strconv.Atoi(m[1]); err == nil && s >= n {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// weightsOf returns the description's teacher weights.
func weightsOf(d Description) []float64 {
	w := make([]float64, len(d.Teachers))
	for i, t := range d.Teachers {
		w[i] = t.Weight
	}
	return w
}

// batcher runs the teachers over batches of rows.
type batcher struct {
	st       *store
	teachers []Teacher
	d        Description
	batch    int
	idx      []int
	x        []float32
	logits   [][]float32            // per teacher, batch × classes
	feats    []map[string][]float32 // per teacher, name → batch × size
	row      []byte
}

func newBatcher(st *store, teachers []Teacher, d Description, batch int) *batcher {
	b := &batcher{st: st, teachers: teachers, d: d, batch: batch,
		idx: make([]int, batch), x: make([]float32, batch*st.size)}
	for _, ti := range d.Teachers {
		b.logits = append(b.logits, make([]float32, batch*d.Classes))
		m := map[string][]float32{}
		for _, f := range ti.Features {
			n, _ := shapeSize(f.Shape)
			m[f.Name] = make([]float32, batch*n)
		}
		b.feats = append(b.feats, m)
	}
	return b
}

// writeShard computes the rows of hdr and writes the shard to w, hashing
// the whole file into file. done is called with the rows finished.
func (b *batcher) writeShard(ctx context.Context, w io.Writer, file hash.Hash, hdr shardHeader, done func(int)) error {
	body := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, file), 1<<20)
	out := io.MultiWriter(bw, body)
	if _, err := out.Write(hdr.encode()); err != nil {
		return err
	}
	first, rows := int(hdr.first), int(hdr.rows)
	for lo := 0; lo < rows; lo += b.batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(b.batch, rows-lo)
		if err := b.run(first+lo, n); err != nil {
			return err
		}
		for k := range n {
			if err := b.encodeRow(k, first+lo+k); err != nil {
				return err
			}
			if _, err := out.Write(b.row); err != nil {
				return err
			}
		}
		done(lo + n)
	}
	if _, err := bw.Write(body.Sum(nil)); err != nil {
		return err
	}
	return bw.Flush()
}

// run computes the inputs of rows [g, g+n) and every teacher's outputs.
func (b *batcher) run(g, n int) error {
	idx := b.idx[:n]
	for k := range idx {
		idx[k] = g + k
	}
	x := b.x[:n*b.st.size]
	b.st.inputs(idx, x, false)
	for t, tc := range b.teachers {
		name := teacherLabel(t, tc.Name)
		out := b.logits[t][:n*b.d.Classes]
		if err := tc.Model.Forward(x, n, out); err != nil {
			return fmt.Errorf("%s on rows [%d, %d): %w", name, g, g+n, err)
		}
		if err := checkFinite(out, b.d.Classes, g, "logit"); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(tc.Features) == 0 {
			continue
		}
		m := map[string][]float32{}
		for _, f := range b.d.Teachers[t].Features {
			buf := b.feats[t][f.Name]
			m[f.Name] = buf[:n*(len(buf)/b.batch)]
		}
		if err := tc.FeatureFn(x, n, m); err != nil {
			return fmt.Errorf("%s features on rows [%d, %d): %w", name, g, g+n, err)
		}
		for _, f := range b.d.Teachers[t].Features {
			buf := b.feats[t][f.Name]
			per := len(buf) / b.batch
			if err := checkFinite(buf[:n*per], per, g, "value of feature "+strconv.Quote(f.Name)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

// checkFinite reports the first NaN or infinity in vals (rows of width
// values, the first being row g).
func checkFinite(vals []float32, width, g int, what string) error {
	for i, v := range vals {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s %d of row %d is %v; teacher outputs must be finite", what, i%width, g+i/width, v)
		}
	}
	return nil
}

// encodeRow encodes row k of the current batch (global row g) into b.row.
func (b *batcher) encodeRow(k, g int) error {
	c := b.d.Classes
	row := b.row[:0]
	var err error
	for t := range b.teachers {
		if row, err = encodeValues(row, b.logits[t][k*c:(k+1)*c], b.d.Dtype); err != nil {
			return fmt.Errorf("%s, logits of row %d: %w", teacherLabel(t, b.teachers[t].Name), g, err)
		}
	}
	for t, ti := range b.d.Teachers {
		for _, f := range ti.Features {
			buf := b.feats[t][f.Name]
			per := len(buf) / b.batch
			if row, err = encodeValues(row, buf[k*per:(k+1)*per], b.d.Dtype); err != nil {
				return fmt.Errorf("%s, feature %q of row %d: %w", teacherLabel(t, b.teachers[t].Name), f.Name, g, err)
			}
		}
	}
	b.row = row
	return nil
}
