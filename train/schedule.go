package train

import (
	"fmt"
	"math"
)

// Schedule kinds.
const (
	Constant    = "constant"
	Cosine      = "cosine"
	Step        = "step"
	Exponential = "exponential"
)

// Schedule shapes the learning rate over training. Positions are in
// epochs (fractional within an epoch) so a schedule means the same thing
// at any batch size.
type Schedule struct {
	Kind      string  // constant (default), cosine, step, exponential
	Warmup    float64 // epochs of linear ramp from 0 to the base rate
	StepEvery int     // step: multiply by Gamma every StepEvery epochs
	Gamma     float64 // step and exponential decay factor
	MinLR     float64 // cosine floor
}

// Validate reports a schedule that cannot be evaluated.
func (s Schedule) Validate() error {
	switch s.Kind {
	case "", Constant, Cosine:
	case Step:
		if s.StepEvery < 1 {
			return fmt.Errorf("train: step schedule needs step_every >= 1, got %d", s.StepEvery)
		}
		fallthrough
	case Exponential:
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			return fmt.Errorf("train: %s schedule needs gamma in (0, 1], got %v", s.Kind, s.Gamma)
		}
	default:
		return fmt.Errorf("train: unknown schedule %q (want constant, cosine, step or exponential)", s.Kind)
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
