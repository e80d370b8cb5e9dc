package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/safetensors"
)

// Checkpoint is everything needed to continue training exactly where it
// stopped. Dropout masks and the data order are drawn from (seed, step)
// and (seed, epoch), so the position is the only random state there is.
type Checkpoint struct {
	// Key identifies the training run the checkpoint belongs to; a
	// checkpoint with another key is ignored.
	Key string
	// Step is the number of finished steps; Epoch and Batch locate the
	// next batch (0-based).
	Step, Epoch, Batch int
	// EpochSum is the running loss sum of the current epoch and
	// EpochLoss the finished epochs' mean losses.
	EpochSum  float64
	EpochLoss []float64
	Weights   model.Weights
	Optimizer backend.OptimizerState
}

// Checkpointer stores checkpoints.
type Checkpointer interface {
	// Load returns the newest good checkpoint, or nil if there is none.
	Load() (*Checkpoint, error)
	Save(*Checkpoint) error
	// Remove deletes the checkpoints once training has finished.
	Remove() error
}

// FileCheckpointer keeps checkpoints in a safetensors file: weights and
// optimizer tensors, and the position (key, step, epoch, batch, running
// loss sums, optimizer step) as JSON in the metadata. A SHA-256 over the
// metadata JSON exactly as stored and over every tensor's name, dtype,
// shape and bytes covers everything that determines the resumed state, so
// that an edited "batch" is caught like a flipped weight. The previous
// checkpoint is kept as Path+".prev": if the newest is damaged, Load warns
// through Warn and falls back to it, and if that is damaged too, training
// starts afresh. Checkpoints of format v1, whose checksum covered the
// tensors only, are rejected the same way, with a warning saying why.
type FileCheckpointer struct {
	Path string
	Key  string
	Warn func(msg string, err error)
}

const (
	ckptFormat  = "distill.checkpoint/v2"
	ckptFormat1 = "distill.checkpoint/v1"
	weightsPfx  = "weights/"
	optimPfx    = "optimizer/"
	metaKey     = "distill.checkpoint"
	sumKey      = "distill.checkpoint.sha256"
	prevSuffix  = ".prev"
	maxCkptSize = 8 << 30
)

type ckptMeta struct {
	Format    string    `json:"format"`
	Key       string    `json:"key"`
	Step      int       `json:"step"`
	Epoch     int       `json:"epoch"`
	Batch     int       `json:"batch"`
	EpochSum  float64   `json:"epoch_sum"`
	EpochLoss []float64 `json:"epoch_loss"`
	OptStep   int64     `json:"optimizer_step"`
	// SHA256 is only in v1 checkpoints; v2 keeps the checksum under
	// sumKey, beside the JSON it covers.
	SHA256 string `json:"sha256,omitempty"`
}

// Save writes c atomically, keeping the previous checkpoint.
func (f *FileCheckpointer) Save(c *Checkpoint) error {
	file := &safetensors.File{Tensors: map[string]safetensors.Tensor{}, Metadata: map[string]string{}}
	for n, t := range c.Weights {
		file.Tensors[weightsPfx+n] = safetensors.F32(t.Shape, t.Data)
	}
	for n, t := range c.Optimizer.Tensors {
		file.Tensors[optimPfx+n] = safetensors.F32(t.Shape, t.Data)
	}
	meta := ckptMeta{Format: ckptFormat, Key: c.Key, Step: c.Step, Epoch: c.Epoch, Batch: c.Batch,
		EpochSum: c.EpochSum, EpochLoss: c.EpochLoss, OptStep: c.Optimizer.Step}
	mb, err := json.Marshal(meta)
	if err != nil {
		// NaN or Inf sums: run refuses non-finite losses before they are
		// summed, so this is a caller's bug, not a user's.
		return fmt.Errorf("checkpoint %s: %w", f.Path, err)
	}
	file.Metadata[metaKey] = string(mb)
	file.Metadata[sumKey] = checksum(file)
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, file); err != nil {
		return fmt.Errorf("checkpoint %s: %w", f.Path, err)
	}
	if _, err := os.Stat(f.Path); err == nil {
		if err := os.Rename(f.Path, f.Path+prevSuffix); err != nil {
			return fmt.Errorf("checkpoint %s: keep previous: %w", f.Path, err)
		}
	}
	return atomicfile.WriteFile(f.Path, buf.Bytes(), 0o644)
}

// Load returns the newest intact checkpoint with f.Key, or nil.
func (f *FileCheckpointer) Load() (*Checkpoint, error) {
	for _, p := range []string{f.Path, f.Path + prevSuffix} {
		c, err := readCheckpoint(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			if f.Warn != nil {
				f.Warn("checkpoint is unusable; trying the previous one, else training from the start", err)
			}
			continue
		}
		if c.Key != f.Key {
			continue // another run's: start afresh
		}
		return c, nil
	}
	return nil, nil // none, or none intact: train from the start
}

// Remove deletes both checkpoint files.
func (f *FileCheckpointer) Remove() error {
	var errs []error
	for _, p := range []string{f.Path, f.Path + prevSuffix} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func readCheckpoint(path string) (*Checkpoint, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxCkptSize {
		return nil, fmt.Errorf("checkpoint %s: %d bytes is larger than any checkpoint distill writes", path, fi.Size())
	}
	file, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	var meta ckptMeta
	if err := json.Unmarshal([]byte(file.Metadata[metaKey]), &meta); err != nil {
		return nil, fmt.Errorf("checkpoint %s: not a distill checkpoint (metadata %q)", path, metaKey)
	}
	switch meta.Format {
	case ckptFormat:
	case ckptFormat1:
		// Its checksum left the position out, so the position cannot be
		// trusted: better to retrain than to resume somewhere else.
		return nil, fmt.Errorf("checkpoint %s: format %s from an older distill, whose checksum does not cover the training position; not resuming from it", path, ckptFormat1)
	default:
		return nil, fmt.Errorf("checkpoint %s: not a distill checkpoint (format %q)", path, meta.Format)
	}
	if stored, got := file.Metadata[sumKey], checksum(file); stored != got {
		return nil, fmt.Errorf("checkpoint %s: checksum mismatch (stored %q, computed %s): the file is corrupted", path, stored, got)
	}
	c := &Checkpoint{Key: meta.Key, Step: meta.Step, Epoch: meta.Epoch, Batch: meta.Batch, EpochSum: meta.EpochSum,
		EpochLoss: meta.EpochLoss, Weights: model.Weights{}, Optimizer: backend.OptimizerState{Step: meta.OptStep, Tensors: model.Weights{}}}
	for n, t := range file.Tensors {
		data, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: tensor %s: %w", path, n, err)
		}
		mt := model.Tensor{Shape: t.Shape, Data: data}
		switch {
		case strings.HasPrefix(n, weightsPfx):
			c.Weights[strings.TrimPrefix(n, weightsPfx)] = mt
		case strings.HasPrefix(n, optimPfx):
			c.Optimizer.Tensors[strings.TrimPrefix(n, optimPfx)] = mt
		default:
			return nil, fmt.Errorf("checkpoint %s: unexpected tensor %q", path, n)
		}
	}
	if c.Step < 0 || c.Epoch < 0 || c.Batch < 0 {
		return nil, fmt.Errorf("checkpoint %s: negative position", path)
	}
	return c, nil
}

// checksum is a SHA-256 over the position metadata exactly as stored and
// the tensors' names, dtypes, shapes and bytes: everything a resume reads.
func checksum(f *safetensors.File) string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	meta := f.Metadata[metaKey]
	// Length-prefixed, so no metadata can pass for the start of a tensor.
	fmt.Fprintf(h, "%d\x00%s", len(meta), meta)
	for _, n := range names {
		t := f.Tensors[n]
		fmt.Fprintf(h, "%s\x00%s\x00%v\x00", n, t.DType, t.Shape)
		h.Write(t.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}
