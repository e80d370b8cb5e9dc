package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/distill-dev/distill/internal/fileio"
	"math"
	"strings"
	"time"

	"github.com/distill-dev/distill/internal/atomicfile"
)

// Schema identifies version 1 of the report.json contract.
const Schema = "distill.report/v1"

// maxJSONSize bounds the report ReadJSON reads.
const maxJSONSize = 64 << 20

// Report is the outcome of one run of a recipe.
type Report struct {
	Schema  string `json:"schema"`  // Schema; WriteJSON fills it in if empty
	Recipe  string `json:"recipe"`  // the recipe's name
	Backend string `json:"backend"` // compute backend, e.g. "gorgonia"
	Device  string `json:"device"`  // e.g. "cpu", "cuda:0"
	// Precision is the arithmetic of the backend's forward passes when
	// it is not float32: "bf16" (mixed precision). Absent means fp32.
	Precision string  `json:"precision,omitempty"`
	Seed      int64   `json:"seed"`
	Dataset   Dataset `json:"dataset"`
	// Models lists every model evaluated, in the order they were.
	Models []Model `json:"models"`
	// Stages lists how long each step of the run took, in order.
	Stages  []Stage   `json:"stages"`
	Created time.Time `json:"created"`
	// Version is the version of distill that wrote the report.
	Version string `json:"version,omitempty"`
	// Machine is the computer the serving numbers were measured on.
	Machine *Machine `json:"machine,omitempty"`
	// Price is the price the costs assume.
	Price *Pricing `json:"price,omitempty"`
	// TrainingCost is what the run's stages cost at Price.
	TrainingCost *TrainingCost `json:"training_cost,omitempty"`
	// Transfer is what the transfer set saved; absent without one.
	Transfer *TransferUse `json:"transfer,omitempty"`
	// Deployment prices each model on every machine of the price table
	// its measurement can speak for; absent when none can.
	Deployment *Deployment `json:"deployment,omitempty"`
	// EngineNote says why the models' serving figures come from more
	// than one engine (e.g. INT8 models on the CPU runtime beside FP32
	// ones on CUDA): figures from different engines compare the engines
	// as much as the models, so a report that mixes them must say so.
	EngineNote string `json:"engine_note,omitempty"`
}

// Dataset names the data and the number of examples in each split.
type Dataset struct {
	Name  string `json:"name"`
	Train int    `json:"train"`
	Test  int    `json:"test"`
}

// Model is one evaluated model.
type Model struct {
	Name   string `json:"name"`
	Role   Role   `json:"role"`   // RoleTeacher, RoleStudent, RoleBaseline, or an INT8 role
	Params int    `json:"params"` // trainable scalars
	Bytes  int64  `json:"bytes"`  // size of the weights file
	// Accuracy is the fraction of test examples classified correctly.
	Accuracy float64 `json:"accuracy"`
	// Errors is the number of test examples misclassified.
	Errors int `json:"errors"`
	// Agreement is the fraction of test examples on which the model
	// predicts the same class as the teacher (1 for the teacher).
	Agreement float64 `json:"agreement"`
	// ECE is the expected calibration error, in [0, 1].
	ECE float64 `json:"ece"`
	// Path is the model's JSON file, relative to the report.
	Path string `json:"path"`
	// Method names the distillation objective of a student, e.g. "kd".
	Method string `json:"method,omitempty"`
	// Temperature and Alpha are the soft-target temperature and weight
	// of a student trained with knowledge distillation.
	Temperature float64 `json:"temperature,omitempty"`
	Alpha       float64 `json:"alpha,omitempty"`
	// Calibration is an INT8 model's activation calibration method and
	// FallbackLayers the layers kept in float32 to meet the accuracy
	// budget (see package quantize).
	Calibration    string   `json:"calibration,omitempty"`
	FallbackLayers []string `json:"fallback_layers,omitempty"`
	// Source names the float model an INT8 model was quantized from.
	Source string `json:"source,omitempty"`
	// TrainSeconds is how long training the model took.
	TrainSeconds float64 `json:"train_seconds,omitempty"`
	// Serving is the model's measured latency, throughput and memory;
	// absent when it was not measured.
	Serving *Serving `json:"serving,omitempty"`
	// Cost is what serving the model costs at the report's price, and
	// whether making it paid off; absent when it was not priced.
	Cost *Cost `json:"cost,omitempty"`
}

// Stage is one timed step of a run.
type Stage struct {
	// Name is the StageID's String form.
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// DeviceMemory is the most device memory the stage held, on a
	// backend whose device counts it (libtorch on CUDA); absent
	// elsewhere.
	DeviceMemory *DeviceMemory `json:"device_memory,omitempty"`
}

// DeviceMemory is the peak of an accelerator's memory over a stage or a
// serving measurement, as the device's allocator counts it: for libtorch
// on CUDA, its caching allocator, which is what torch.cuda.memory_stats
// reads.
type DeviceMemory struct {
	// AllocatedPeakBytes is the most that live tensors occupied.
	AllocatedPeakBytes int64 `json:"allocated_peak_bytes"`
	// ReservedPeakBytes is the most the allocator held from the driver,
	// its cache included: the memory the process kept from others.
	ReservedPeakBytes int64 `json:"reserved_peak_bytes"`
}

// validate checks what JSON cannot carry or the contract forbids.
func (r *Report) validate() error {
	if r.Schema != "" && r.Schema != Schema {
		return fmt.Errorf("schema %q, this version writes %q", r.Schema, Schema)
	}
	var errs []error
	finite := func(what string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("%s is %v", what, v))
		}
	}
	for _, m := range r.Models {
		if !m.Role.Valid() {
			errs = append(errs, fmt.Errorf("model %q: role %q, want one of %q, %q, %q, %q, %q", m.Name, m.Role, RoleTeacher, RoleStudent, RoleBaseline, RoleStudentInt8, RoleTeacherInt8))
		}
		finite(fmt.Sprintf("model %q: accuracy", m.Name), m.Accuracy)
		finite(fmt.Sprintf("model %q: agreement", m.Name), m.Agreement)
		finite(fmt.Sprintf("model %q: ece", m.Name), m.ECE)
		finite(fmt.Sprintf("model %q: temperature", m.Name), m.Temperature)
		finite(fmt.Sprintf("model %q: alpha", m.Name), m.Alpha)
		finite(fmt.Sprintf("model %q: train_seconds", m.Name), m.TrainSeconds)
		if m.Serving != nil {
			m.Serving.numbers(fmt.Sprintf("model %q: serving.", m.Name), finite)
		}
		if m.Cost != nil {
			m.Cost.numbers(fmt.Sprintf("model %q: cost.", m.Name), finite)
		}
	}
	if err := r.checkEngines(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range r.Stages {
		finite(fmt.Sprintf("stage %q: seconds", s.Name), s.Seconds)
	}
	if r.Price != nil {
		r.Price.USDPerHour.numbers("price.usd_per_hour.", finite)
		finite("price.latency_target_ms", r.Price.LatencyTargetMS)
	}
	if r.TrainingCost != nil {
		finite("training_cost.seconds", r.TrainingCost.Seconds)
		r.TrainingCost.USD.numbers("training_cost.usd.", finite)
	}
	return errors.Join(errs...)
}

// checkEngines refuses models measured on different engines in a report
// that does not say why (EngineNote).
func (r *Report) checkEngines() error {
	if strings.TrimSpace(r.EngineNote) != "" {
		return nil
	}
	first := -1
	for i, m := range r.Models {
		if m.Serving == nil {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if a, b := r.Models[first].Serving.Engine, m.Serving.Engine; a != b {
			return fmt.Errorf("model %q was measured on engine %q but model %q on %q: measure every model on one engine, or set engine_note to say why they differ", r.Models[first].Name, a, m.Name, b)
		}
	}
	return nil
}

// encode returns the bytes WriteJSON writes.
func (r *Report) encode() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	c := *r
	c.Schema = Schema
	if c.Models == nil {
		c.Models = []Model{}
	}
	if c.Stages == nil {
		c.Stages = []Stage{}
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteJSON atomically writes the report to path as indented JSON. It
// sets the schema field to Schema (r itself is not changed), writes empty
// lists rather than null, and refuses a report with another schema, an
// unknown role, or a NaN or infinite number, which JSON cannot carry.
func (r *Report) WriteJSON(path string) error {
	b, err := r.encode()
	if err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON, or by any later version
// of distill that keeps the schema: fields it does not know are ignored.
// A file with another schema, or none, is refused.
func ReadJSON(path string) (*Report, error) {
	b, err := fileio.ReadFileMax(path, maxJSONSize, "a report")
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return decode(path, b)
}

func decode(path string, b []byte) (*Report, error) {
	// Check the schema first, so that a report of another version is
	// named as such rather than as a type error on a changed field.
	var head struct {
		Schema *string `json:"schema"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("report: %s: not a JSON report: %w", path, err)
	}
	switch {
	case head.Schema == nil:
		return nil, fmt.Errorf("report: %s: no \"schema\" field; not a distill report (want %q)", path, Schema)
	case *head.Schema != Schema:
		return nil, fmt.Errorf("report: %s: schema %q, this version reads %q", path, *head.Schema, Schema)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	return &r, nil
}
