package report

import "strings"

// Role is what part a model plays in a run. The pipeline assigns roles
// and names stages; cost, compare and the report's tables read them, so
// this package owns both vocabularies.
type Role string

// Model roles.
const (
	RoleTeacher  Role = "teacher"  // the large model distilled from
	RoleStudent  Role = "student"  // a small model trained with the teacher
	RoleBaseline Role = "baseline" // a student's architecture trained without it
	// INT8 versions of a student or teacher (post-training quantization).
	RoleStudentInt8 Role = "student-int8"
	RoleTeacherInt8 Role = "teacher-int8"
)

// Roles lists every role, in the order the pipeline makes them.
var Roles = []Role{RoleTeacher, RoleStudent, RoleBaseline, RoleStudentInt8, RoleTeacherInt8}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	for _, v := range Roles {
		if r == v {
			return true
		}
	}
	return false
}

// Int8 is the role of an INT8 model quantized from a model of role r,
// and false for a role that is never quantized.
func (r Role) Int8() (Role, bool) {
	switch r {
	case RoleStudent:
		return RoleStudentInt8, true
	case RoleTeacher:
		return RoleTeacherInt8, true
	}
	return "", false
}

// StageKind is what a stage of the pipeline does.
type StageKind string

// Stage kinds, in pipeline order.
const (
	StageData     StageKind = "data"     // load the dataset
	StageTeacher  StageKind = "teacher"  // train or load one teacher
	StageTransfer StageKind = "transfer" // build or reuse the transfer set
	StageStudent  StageKind = "student"  // distil one student
	StageBaseline StageKind = "baseline" // train one student's baseline
	StageQuantize StageKind = "quantize" // quantize one model to INT8
	StageEval     StageKind = "eval"     // evaluate (and measure) every model
)

// StageID names one stage: its kind and, for a stage that makes a model,
// the model it is about (see Stage.Name for the written form).
//
// Model is the teacher's name for StageTeacher, the student's name for
// StageStudent and StageBaseline (the baseline model is
// BaselineName(Model)), and the float source model for StageQuantize (the
// INT8 model is Int8Name(Model)); it is empty for the other kinds.
type StageID struct {
	Kind  StageKind
	Model string
}

// String is the stage's name in report.json: the kind alone for the
// run-wide stages, the teacher's own name for a teacher ("teacher" for
// the main one, an ensemble member's name otherwise), and "kind:model"
// for the rest, e.g. "student:small".
func (id StageID) String() string {
	switch {
	case id.Kind == StageTeacher:
		return id.Model
	case id.Model == "":
		return string(id.Kind)
	}
	return string(id.Kind) + ":" + id.Model
}

// ParseStageID reads a stage name written by StageID.String. A name
// without a kind prefix that is not a run-wide stage is a teacher's.
func ParseStageID(name string) StageID {
	if k, m, ok := strings.Cut(name, ":"); ok {
		return StageID{Kind: StageKind(k), Model: m}
	}
	switch k := StageKind(name); k {
	case StageData, StageTransfer, StageEval:
		return StageID{Kind: k}
	}
	return StageID{Kind: StageTeacher, Model: name}
}

// ID is the stage's typed name.
func (s Stage) ID() StageID { return ParseStageID(s.Name) }

// NewStage is the record of stage id, which took seconds.
func NewStage(id StageID, seconds float64) Stage {
	return Stage{Name: id.String(), Seconds: seconds}
}

// BaselineName is the name of the baseline of the student named student.
func BaselineName(student string) string { return student + "-baseline" }

// Int8Name is the name of the INT8 model quantized from source.
func Int8Name(source string) string { return source + "-int8" }

// MadeBy returns the stage that made m, and false for a role no stage
// makes. An INT8 model's stage is its quantization (its Source, or the
// name Int8Name gave it); a baseline's is named after its student.
func MadeBy(m Model) (StageID, bool) {
	switch m.Role {
	case RoleTeacher:
		return StageID{Kind: StageTeacher, Model: m.Name}, true
	case RoleStudent:
		return StageID{Kind: StageStudent, Model: m.Name}, true
	case RoleBaseline:
		s, ok := strings.CutSuffix(m.Name, BaselineName(""))
		return StageID{Kind: StageBaseline, Model: s}, ok
	case RoleStudentInt8, RoleTeacherInt8:
		src := m.Source
		if src == "" {
			var ok bool
			if src, ok = strings.CutSuffix(m.Name, Int8Name("")); !ok {
				return StageID{}, false
			}
		}
		return StageID{Kind: StageQuantize, Model: src}, true
	}
	return StageID{}, false
}

// StageSeconds returns the seconds of the report's stage id, and false if
// the report has none.
func (r *Report) StageSeconds(id StageID) (float64, bool) {
	name := id.String()
	for _, s := range r.Stages {
		if s.Name == name {
			return s.Seconds, true
		}
	}
	return 0, false
}
