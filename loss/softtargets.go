package loss

import (
	"fmt"
	"math"
)

// SoftTargets are the settings of response distillation: the temperature
// at which teacher and student predictions are softened, and the weight
// of the soft term. The teacher side (mixing an ensemble's predictions,
// labelling a transfer set) and the student's objective must soften at
// the same temperature; handing both the one SoftTargets value makes that
// hold by construction.
type SoftTargets struct {
	Temperature float64
	Alpha       float64
}

// CheckTemperature reports a softening temperature that is not finite
// and positive: the one check behind every temperature the loss and the
// teacher mixing take.
func CheckTemperature(T float64) error {
	if !(T > 0) || math.IsInf(T, 0) {
		return fmt.Errorf("loss: temperature must be finite and > 0, got %v", T)
	}
	return nil
}

// Objective is the response objective with these settings (Hinton).
func (s SoftTargets) Objective() Objective { return Hinton(s.Alpha, s.Temperature) }
