package transfer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/distill-dev/distill/augment"
	"github.com/distill-dev/distill/data"
	"github.com/distill-dev/distill/internal/fileio"
)

// Limits beyond which a description is treated as a mistake or as
// corrupt, so that no size computed from one can overflow.
const (
	maxTeachers = 64
	maxFeatures = 64
	maxClasses  = 1 << 20
	maxCopies   = 1 << 16
	maxRows     = 1 << 40
	maxWidth    = 1 << 28 // values per row
	maxNameLen  = 128
	maxSetBytes = 1 << 50 // all rows at 4 bytes a value
)

// Dtypes of the stored values.
const (
	// Float32 stores teacher outputs exactly as the teacher returned
	// them. It is the default.
	Float32 = "float32"
	// Float16 stores them as IEEE 754 half precision, halving the size
	// at a relative error of at most 2⁻¹¹ (values beyond ±65504 are
	// refused). Worth it when large feature tensors are stored.
	Float16 = "float16"
)

// Description is everything that determines a transfer set's stored
// targets, and a little more for people reading its manifest (names and
// weights). Key hashes the determining part.
type Description struct {
	// Source identifies the base examples.
	Source SourceInfo `json:"source"`
	// Teachers lists the teachers in storage order.
	Teachers []TeacherInfo `json:"teachers"`
	// Classes is the number of logits each teacher gives per example.
	Classes int `json:"classes"`
	// Copies is K, the number of augmented copies of each base example
	// besides the original (copy 0).
	Copies int `json:"copies"`
	// Seed, with the example index and copy number, determines each
	// augmented copy. It is 0 when Copies is 0.
	Seed int64 `json:"seed"`
	// Augment is the augmentation of copies 1…K; zero when Copies is 0.
	Augment augment.Config `json:"augment"`
	// Dtype is Float32 or Float16.
	Dtype string `json:"dtype"`
}

// SourceInfo identifies the base dataset of a transfer set.
type SourceInfo struct {
	// Name is the dataset's name, for people; not part of the key.
	Name string `json:"name"`
	// Examples is N, the number of base examples.
	Examples int `json:"examples"`
	// Shape is one example's shape, e.g. [1, 28, 28].
	Shape []int `json:"shape"`
	// Labelled reports whether the dataset's labels are part of the set
	// (false for an unlabelled transfer set, whose hard labels are the
	// teachers' predictions).
	Labelled bool `json:"labelled"`
	// SHA256 is the hex SHA-256 of the shape, the inputs and (when
	// labelled) the labels; see DescribeData.
	SHA256 string `json:"sha256"`
}

// TeacherInfo identifies one teacher.
type TeacherInfo struct {
	// Name labels the teacher, for people; not part of the key.
	Name string `json:"name"`
	// SHA256 is the hex SHA-256 of the teacher's weights (see HashFiles).
	SHA256 string `json:"sha256"`
	// Weight is the teacher's weight in the ensemble as built. Weights
	// only combine stored outputs when they are read, so they are not
	// part of the key; Set.WithWeights changes them.
	Weight float64 `json:"weight"`
	// Features lists the feature tensors stored for this teacher, in
	// order.
	Features []FeatureSpec `json:"features,omitempty"`
}

// FeatureSpec names one per-example feature tensor of a teacher, such as
// a hidden layer's activations.
type FeatureSpec struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
}

// Rows returns the number of examples in the set, N × (K+1).
func (d Description) Rows() int { return d.Source.Examples * (d.Copies + 1) }

// Key returns the cache key of d: the hex SHA-256 of a canonical,
// line-based encoding of everything that determines the stored targets
// (the source's content hash, example count, shape and labelledness; each
// teacher's weights hash and features, in order; the classes; the copies
// and, when there are any, the seed and augment.Config.Key; the dtype;
// and the format version). Names and weights are left out: renaming a
// teacher or re-weighting an ensemble reuses the set.
//
// Key does not validate d; Build and Open do.
func Key(d Description) string {
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + "=" + v + "\n") }
	b.WriteString(formatName + "\n")
	line("source.sha256", d.Source.SHA256)
	line("source.examples", strconv.Itoa(d.Source.Examples))
	line("source.shape", ints(d.Source.Shape))
	line("source.labelled", strconv.FormatBool(d.Source.Labelled))
	line("classes", strconv.Itoa(d.Classes))
	line("dtype", d.Dtype)
	line("copies", strconv.Itoa(d.Copies))
	if d.Copies > 0 {
		line("seed", strconv.FormatInt(d.Seed, 10))
		line("augment", d.Augment.Key())
	}
	line("teachers", strconv.Itoa(len(d.Teachers)))
	for i, t := range d.Teachers {
		p := "teacher." + strconv.Itoa(i)
		line(p+".sha256", t.SHA256)
		line(p+".features", strconv.Itoa(len(t.Features)))
		for j, f := range t.Features {
			line(p+".feature."+strconv.Itoa(j), strconv.Quote(f.Name)+" "+ints(f.Shape))
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// ints formats a shape as "1,28,28".
func ints(s []int) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

// Validate reports everything wrong with d, all at once.
func (d Description) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	s := d.Source
	size, err := shapeSize(s.Shape)
	if err != nil {
		bad("source shape: %v", err)
	}
	if s.Examples < 1 || s.Examples > maxRows {
		bad("source has %d examples; it needs between 1 and %d", s.Examples, int64(maxRows))
	}
	if !isHash(s.SHA256) {
		bad("source sha256 %q is not 64 lower-case hex digits", s.SHA256)
	}
	if d.Classes < 1 || d.Classes > maxClasses {
		bad("classes must be in [1, %d], got %d", maxClasses, d.Classes)
	}
	if d.Copies < 0 || d.Copies > maxCopies {
		bad("copies must be in [0, %d], got %d", maxCopies, d.Copies)
	}
	if d.Copies > 0 {
		if !d.Augment.Enabled() {
			bad("copies is %d but no augmentation is on, so every copy would equal the original; turn one on or set copies to 0", d.Copies)
		} else if size > 0 {
			if _, err := augment.New(d.Augment, d.Seed, s.Shape); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if d.Copies == 0 && (d.Seed != 0 || d.Augment != (augment.Config{})) {
		bad("copies is 0, so seed and augment must be zero (Describe clears them)")
	}
	if d.Dtype != Float32 && d.Dtype != Float16 {
		bad("dtype must be %q or %q, got %q", Float32, Float16, d.Dtype)
	}
	if s.Examples >= 1 && d.Copies >= 0 && d.Copies <= maxCopies && s.Examples > maxRows/(d.Copies+1) {
		bad("%d examples × %d copies is more than %d rows", s.Examples, d.Copies+1, int64(maxRows))
	}
	if n := len(d.Teachers); n < 1 || n > maxTeachers {
		bad("a transfer set needs between 1 and %d teachers, got %d", maxTeachers, n)
	}
	width := 0
	if d.Classes >= 1 && d.Classes <= maxClasses && len(d.Teachers) <= maxTeachers {
		width = len(d.Teachers) * d.Classes
	}
	var weightSum float64
	for i, t := range d.Teachers {
		name := teacherLabel(i, t.Name)
		if !isHash(t.SHA256) {
			bad("%s: sha256 %q is not 64 lower-case hex digits (hash its weights files with HashFiles)", name, t.SHA256)
		}
		if !(t.Weight >= 0) || math.IsInf(t.Weight, 0) {
			bad("%s: weight must be finite and >= 0, got %v", name, t.Weight)
		} else {
			weightSum += t.Weight
		}
		if len(t.Features) > maxFeatures {
			bad("%s: at most %d feature tensors, got %d", name, maxFeatures, len(t.Features))
			continue
		}
		seen := map[string]bool{}
		for _, f := range t.Features {
			if err := checkName(f.Name); err != nil {
				bad("%s: feature %q: %v", name, f.Name, err)
			}
			if f.Name == logitsColumn {
				bad("%s: feature name %q is reserved", name, logitsColumn)
			}
			if seen[f.Name] {
				bad("%s: feature %q is listed twice", name, f.Name)
			}
			seen[f.Name] = true
			n, err := shapeSize(f.Shape)
			if err != nil {
				bad("%s: feature %q: %v", name, f.Name, err)
			}
			width += n
		}
	}
	if width > maxWidth {
		bad("a row of %d values is more than %d", width, maxWidth)
	} else if rows := d.Source.Examples; width > 0 && rows >= 1 && rows <= maxRows && d.Copies >= 0 && d.Copies <= maxCopies &&
		int64(rows) > maxSetBytes/int64(width*4)/int64(d.Copies+1) {
		bad("%d rows of %d values are more than %d bytes", int64(rows)*int64(d.Copies+1), width, int64(maxSetBytes))
	}
	if len(d.Teachers) > 0 && math.IsInf(weightSum, 0) {
		bad("teacher weights sum to %v", weightSum)
	}
	return errors.Join(errs...)
}

// teacherLabel names teacher i in messages.
func teacherLabel(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("teacher %d", i)
	}
	return fmt.Sprintf("teacher %d (%q)", i, name)
}

// checkName accepts a feature name of 1 to maxNameLen printable ASCII
// characters.
func checkName(s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("a name needs 1 to %d characters", maxNameLen)
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return fmt.Errorf("a name may use printable ASCII only")
		}
	}
	return nil
}

// shapeSize returns the product of a shape with positive dimensions, or
// an error if it is empty, has a non-positive dimension or exceeds
// maxWidth values.
func shapeSize(shape []int) (int, error) {
	if len(shape) == 0 || len(shape) > 8 {
		return 0, fmt.Errorf("shape %v must have 1 to 8 dimensions", shape)
	}
	n := 1
	for _, d := range shape {
		if d <= 0 || n > maxWidth/d {
			return 0, fmt.Errorf("shape %v must have positive dimensions and at most %d values", shape, maxWidth)
		}
		n *= d
	}
	return n, nil
}

// isHash reports whether s is 64 lower-case hex digits.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// DescribeData returns the SourceInfo of d, hashing its content. With
// labelled false the labels are ignored (and may be absent): the examples
// are then len(d.X)/d.Size(), and the set's hard labels will be the
// teachers' predictions.
//
// The hash is SHA-256 over "distill.transfer.source/v1\n", the shape,
// the example count, whether labelled, the inputs as little-endian
// float32 and (when labelled) the labels as little-endian int32.
func DescribeData(d *data.Dataset, labelled bool) (SourceInfo, error) {
	if d == nil {
		return SourceInfo{}, errors.New("transfer: the dataset is nil")
	}
	size, err := shapeSize(d.Shape)
	if err != nil {
		return SourceInfo{}, fmt.Errorf("transfer: dataset %q: %w", d.Name, err)
	}
	if len(d.X)%size != 0 {
		return SourceInfo{}, fmt.Errorf("transfer: dataset %q holds %d values, not a whole number of examples of shape %v", d.Name, len(d.X), d.Shape)
	}
	n := len(d.X) / size
	if labelled {
		if len(d.Y) != n {
			return SourceInfo{}, fmt.Errorf("transfer: dataset %q has %d examples but %d labels", d.Name, n, len(d.Y))
		}
		for i, y := range d.Y {
			if y < 0 || int(y) >= d.Classes {
				return SourceInfo{}, fmt.Errorf("transfer: dataset %q: label %d of example %d is outside [0, %d)", d.Name, y, i, d.Classes)
			}
		}
	}
	if n == 0 {
		return SourceInfo{}, fmt.Errorf("transfer: dataset %q is empty", d.Name)
	}
	h := sha256.New()
	fmt.Fprintf(h, "distill.transfer.source/v1\nshape=%s\nexamples=%d\nlabelled=%t\n", ints(d.Shape), n, labelled)
	buf := make([]byte, 0, 64<<10)
	for i, v := range d.X {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if len(buf) == cap(buf) || i == len(d.X)-1 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	if labelled {
		for i, y := range d.Y {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(y))
			if len(buf) == cap(buf) || i == len(d.Y)-1 {
				h.Write(buf)
				buf = buf[:0]
			}
		}
	}
	return SourceInfo{
		Name:     d.Name,
		Examples: n,
		Shape:    append([]int(nil), d.Shape...),
		Labelled: labelled,
		SHA256:   hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// HashFiles returns the hex SHA-256 identifying a teacher's weights
// files: for one file, the SHA-256 of its content (what sha256sum
// prints); for several, the SHA-256 of their SHA-256s, one a line, in the
// order given. For a distill model, pass both files of model.Paths.
func HashFiles(paths ...string) (string, error) {
	if len(paths) == 0 {
		return "", errors.New("transfer: HashFiles needs at least one file")
	}
	sums := make([]string, len(paths))
	for i, p := range paths {
		f, err := fileio.Open(p)
		if err != nil {
			return "", fmt.Errorf("transfer: hash teacher weights: %w", err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("transfer: hash teacher weights %s: %w", p, err)
		}
		sums[i] = hex.EncodeToString(h.Sum(nil))
	}
	if len(sums) == 1 {
		return sums[0], nil
	}
	sum := sha256.Sum256([]byte(strings.Join(sums, "\n") + "\n"))
	return hex.EncodeToString(sum[:]), nil
}
