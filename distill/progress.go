package distill

import "time"

// Event reports progress of a run. Long stages send one per training step
// (Step/Steps set) and one when a model is finished (Done).
type Event struct {
	Stage   string // data, teacher, students, eval, report
	Model   string // the model being trained or evaluated, if any
	Message string // a human sentence for milestones; empty for steps
	Epoch   int
	Epochs  int
	Step    int
	Steps   int
	Loss    float64
	Elapsed time.Duration
	Done    bool
}
