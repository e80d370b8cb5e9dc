package train

import (
	"fmt"
	"math"

	"github.com/distill-dev/distill/internal/vocab"
)

// ScheduleKind names a learning-rate schedule.
type ScheduleKind string

// Schedule kinds.
const (
	Constant    ScheduleKind = "constant"
	Cosine      ScheduleKind = "cosine"
	Step        ScheduleKind = "step"
	Exponential ScheduleKind = "exponential"
)

// DefaultSchedule is the kind an empty Schedule.Kind and a recipe without
// schedule.kind use.
const DefaultSchedule = Constant

// schedules lists every kind, DefaultSchedule first; recipe validation,
// its schema and the reference docs derive from it.
var schedules = vocab.Set[ScheduleKind]{Constant, Cosine, Step, Exponential}

// Schedules returns the schedule kinds, DefaultSchedule first. The slice
// is a copy.
func Schedules() []ScheduleKind { return schedules.Values() }

// ParseSchedule returns the kind named s, or an error listing the valid
// names.
func ParseSchedule(s string) (ScheduleKind, error) { return schedules.Parse("train", "schedule", s) }

// Schedule shapes the learning rate over training. Positions are in
// epochs (fractional within an epoch) so a schedule means the same thing
// at any batch size.
type Schedule struct {
	Kind      ScheduleKind // "" means DefaultSchedule
	Warmup    float64      // epochs of linear ramp from 0 to the base rate
	StepEvery int          // step: multiply by Gamma every StepEvery epochs
	Gamma     float64      // step and exponential decay factor
	MinLR     float64      // cosine floor
}

// Validate reports a schedule that cannot be evaluated.
func (s Schedule) Validate() error {
	kind := s.Kind
	if kind == "" {
		kind = DefaultSchedule
	}
	if _, err := ParseSchedule(string(kind)); err != nil {
		return err
	}
	switch kind {
	case Step:
		if s.StepEvery < 1 {
			return fmt.Errorf("train: step schedule needs step_every >= 1, got %d", s.StepEvery)
		}
		fallthrough
	case Exponential:
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			return fmt.Errorf("train: %s schedule needs gamma in (0, 1], got %v", s.Kind, s.Gamma)
		}
	}
	if s.Warmup < 0 {
		return fmt.Errorf("train: warmup must be >= 0, got %v", s.Warmup)
	}
	return nil
}

// LR is the learning rate at position epoch (0 ≤ epoch < epochs) for base
// rate base.
func (s Schedule) LR(base, epoch float64, epochs int) float64 {
	lr := base
	switch s.Kind {
	case Cosine:
		// Cosine annealing over the epochs after warm-up, as
		// torch.optim.lr_scheduler.CosineAnnealingLR.
		span := float64(epochs) - s.Warmup
		p := 0.0
		if span > 0 {
			p = math.Min(math.Max((epoch-s.Warmup)/span, 0), 1)
		}
		lr = s.MinLR + (base-s.MinLR)*(1+math.Cos(math.Pi*p))/2
	case Step:
		lr = base * math.Pow(s.Gamma, math.Floor(epoch/float64(s.StepEvery)))
	case Exponential:
		lr = base * math.Pow(s.Gamma, math.Floor(epoch))
	}
	if s.Warmup > 0 && epoch < s.Warmup {
		lr *= epoch / s.Warmup
	}
	return lr
}
