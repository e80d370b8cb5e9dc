package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/internal/fileio"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/quantize"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
	"github.com/distill-dev/distill/teacher"
	"github.com/distill-dev/distill/train"
)

// This file is where a run resumes from: the key of every stage's output
// (the hash of everything that determined it) and the records that mark
// a stage finished under <out>/stages. A rerun skips a stage whose record
// has the same key and whose model still loads. The keys hash exactly
// what they hashed before the stages moved into their packages, so run
// directories made by earlier versions stay resumable; changing what a
// key hashes retrains that stage in every existing run directory.

// keyOf hashes the JSON of parts: the content that determines an output.
func keyOf(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			panic(fmt.Sprintf("distill: key of %T: %v", p, err)) // only plain data is hashed
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dataKey is what every model trained here depends on: the backend, the
// data and the seed.
func (run *runner) dataKey() any {
	k := struct {
		Backend, Device string
		Data            recipe.Data
		Seed            int64
	}{run.r.Backend, run.be.Device(), run.r.Data, run.r.Seed}
	// Keys of float32 runs stay as they were before precision existed.
	if p := backend.PrecisionOf(run.be); p != backend.PrecisionFP32 {
		return struct {
			Key       any
			Precision backend.Precision
		}{k, p}
	}
	return k
}

// teacherKey is the key of teacher t: its data, model, files and
// training. A loaded file's time and size stand for its content.
func (run *runner) teacherKey(t teacher.Spec) string {
	key := keyOf(run.dataKey(), t.Model, t.Checkpoint, t.TorchScript, run.r.TrainingFor(t.Training))
	if t.Copies > 0 { // keys of teachers without augmentation stay as they were
		key = keyOf(key, t.Copies, t.Augment.Key())
	}
	if t.ONNX != "" || t.Safetensors != "" { // keys of other teachers stay as they were
		key = keyOf(key, t.ONNX, t.ORT.Output, t.Safetensors, t.Map)
	}
	if t.Preprocess.Enabled() {
		key = keyOf(key, t.Preprocess)
	}
	for _, f := range []string{t.Checkpoint, t.TorchScript, t.ONNX, t.Safetensors} {
		if fi, err := os.Stat(f); f != "" && err == nil {
			key = keyOf(key, fi.ModTime(), fi.Size())
		}
	}
	return key
}

// studentKey is the key of distilled student s: its teachers (by key and
// weight), the transfer set, its model, distillation settings and
// training.
func (run *runner) studentKey(s recipe.Student) string {
	keyTransfer := run.r.Transfer
	keyTransfer.AugmentBaselines = false // what the baselines train on does not change the student
	return keyOf(run.teacherKeys, teacher.Weights(teacher.Specs(run.r)), keyTransfer, s.Model, s.Distill, run.r.TrainingFor(s.Training))
}

// baselineKey is the key of student s's baseline; augmented says it
// trains on the transfer set's augmented inputs.
func (run *runner) baselineKey(s recipe.Student, augmented bool) string {
	key := keyOf(run.dataKey(), s.Model, run.r.TrainingFor(s.Training))
	if augmented {
		tr := run.r.Transfer
		key = keyOf(key, tr.Copies, tr.Augment.Key(), tr.Seed)
	}
	return key
}

// int8Key is the key of the INT8 model of the float model of key source.
func (run *runner) int8Key(source string) string { return keyOf(source, run.r.Quantize) }

// done adds stage id, which took rec's time and device memory, to the
// report's stages.
func (run *runner) done(id report.StageID, rec stageRecord) {
	st := report.NewStage(id, rec.Seconds)
	st.DeviceMemory = rec.DeviceMemory
	run.stages = append(run.stages, st)
}

// stageRecord marks a finished model: the key of everything that
// determined it, how long it took and, on a device that counts it, the
// most device memory it held.
type stageRecord struct {
	Key          string               `json:"key"`
	Seconds      float64              `json:"seconds"`
	DeviceMemory *report.DeviceMemory `json:"device_memory,omitempty"`
}

// stageClock measures a stage as it runs: its time and, where the
// backend counts device memory, the peak of it.
type stageClock struct {
	run   *runner
	start time.Time
}

// begin starts measuring a stage: the device's memory peaks restart here.
func (run *runner) begin() stageClock {
	if dm, ok := run.be.(backend.DeviceMemory); ok {
		if err := dm.ResetPeakDeviceMemory(); err != nil && !errors.Is(err, backend.ErrNoDeviceMemory) {
			run.log.Warn("cannot reset the device memory peaks", "err", err)
		}
	}
	return stageClock{run: run, start: time.Now()}
}

// end returns the stage's time since begin and its device memory peak.
func (c stageClock) end() stageRecord {
	return stageRecord{Seconds: time.Since(c.start).Seconds(), DeviceMemory: c.run.devicePeak()}
}

// devicePeak reads the device memory peaks since the last reset, nil
// where the backend does not count device memory.
func (run *runner) devicePeak() *report.DeviceMemory {
	dm, ok := run.be.(backend.DeviceMemory)
	if !ok {
		return nil
	}
	st, err := dm.DeviceMemory()
	if err != nil {
		if !errors.Is(err, backend.ErrNoDeviceMemory) {
			run.log.Warn("cannot read the device memory counters", "err", err)
		}
		return nil
	}
	return &report.DeviceMemory{AllocatedPeakBytes: st.AllocatedPeak, ReservedPeakBytes: st.ReservedPeak}
}

func (run *runner) recordPath(name string) string {
	return filepath.Join(run.out, "stages", name+".json")
}

func (run *runner) checkpointPath(name string) string {
	return filepath.Join(run.out, "checkpoints", name+".ckpt")
}

// finished reports whether the float model named name was already
// produced with the same key, and returns its record.
func (run *runner) finished(name, key string) (stageRecord, bool) {
	rec, ok := run.recorded(name, key)
	if !ok {
		return rec, false
	}
	if _, _, err := model.Load(run.modelPath(name)); err != nil {
		run.log.Warn("finished model is unreadable; training it again", "model", name, "err", err)
		return rec, false
	}
	return rec, true
}

// finishedInt8 is finished for an INT8 model.
func (run *runner) finishedInt8(name, key string) (stageRecord, bool) {
	rec, ok := run.recorded(name, key)
	if !ok {
		return rec, false
	}
	if _, err := quantize.Load(run.modelPath(name)); err != nil {
		run.log.Warn("finished INT8 model is unreadable; quantizing again", "model", name, "err", err)
		return rec, false
	}
	return rec, true
}

// maxRecordSize bounds a stage record, which is a few dozen bytes.
const maxRecordSize = 1 << 16

// recorded returns name's stage record if it has key.
func (run *runner) recorded(name, key string) (stageRecord, bool) {
	b, err := fileio.ReadFileMax(run.recordPath(name), maxRecordSize, "a stage record")
	if err != nil {
		return stageRecord{}, false
	}
	var rec stageRecord
	if json.Unmarshal(b, &rec) != nil || rec.Key != key {
		return stageRecord{}, false
	}
	return rec, true
}

// record marks name finished with key, then drops its training
// checkpoints: only now is the finished model safely on disk.
func (run *runner) record(name, key string, rec stageRecord) error {
	rec.Key = key
	b, _ := json.Marshal(rec)
	if err := atomicfile.WriteFile(run.recordPath(name), b, 0o644); err != nil {
		return err
	}
	return errors.Join(
		(&train.FileCheckpointer{Path: run.checkpointPath(name)}).Remove(),
		(&train.FileCheckpointer{Path: run.checkpointPath(name) + ".hints"}).Remove())
}

// servingRecord is a finished serving measurement: the key of what
// determined it, and the numbers.
type servingRecord struct {
	Key     string         `json:"key"`
	Serving report.Serving `json:"serving"`
}

func (run *runner) servingRecordPath(name string) string {
	return filepath.Join(run.out, "stages", "serving", name+".json")
}

// servingRecorded returns name's recorded serving measurement if its key
// is key.
func (run *runner) servingRecorded(name, key string) (*report.Serving, bool) {
	var r servingRecord
	b, err := os.ReadFile(run.servingRecordPath(name))
	if err != nil || json.Unmarshal(b, &r) != nil || r.Key != key {
		return nil, false
	}
	return &r.Serving, true
}

// recordServing records name's serving measurement under key.
func (run *runner) recordServing(name, key string, s report.Serving) error {
	b, err := json.Marshal(servingRecord{Key: key, Serving: s})
	if err != nil {
		return fmt.Errorf("distill: record the serving measurement of %s: %w", name, err)
	}
	rec := run.servingRecordPath(name)
	if err := os.MkdirAll(filepath.Dir(rec), 0o755); err != nil {
		return fmt.Errorf("distill: record the serving measurement of %s: %w", name, err)
	}
	if err := atomicfile.WriteFile(rec, b, 0o644); err != nil {
		return fmt.Errorf("distill: record the serving measurement of %s: %w", name, err)
	}
	return nil
}
