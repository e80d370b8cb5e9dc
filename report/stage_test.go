package report

import "testing"

func TestStageIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		id   StageID
		name string
	}{
		{StageID{Kind: StageData}, "data"},
		{StageID{Kind: StageTeacher, Model: "teacher"}, "teacher"},
		{StageID{Kind: StageTeacher, Model: "wide"}, "wide"},
		{StageID{Kind: StageTransfer}, "transfer"},
		{StageID{Kind: StageStudent, Model: "small"}, "student:small"},
		{StageID{Kind: StageBaseline, Model: "small"}, "baseline:small"},
		{StageID{Kind: StageQuantize, Model: "small"}, "quantize:small"},
		{StageID{Kind: StageEval}, "eval"},
	} {
		if got := tc.id.String(); got != tc.name {
			t.Errorf("%+v.String() = %q, want %q", tc.id, got, tc.name)
		}
		if got := ParseStageID(tc.name); got != tc.id {
			t.Errorf("ParseStageID(%q) = %+v, want %+v", tc.name, got, tc.id)
		}
	}
}

func TestMadeBy(t *testing.T) {
	for _, tc := range []struct {
		m    Model
		want string
		ok   bool
	}{
		{Model{Name: "teacher", Role: RoleTeacher}, "teacher", true},
		{Model{Name: "wide", Role: RoleTeacher}, "wide", true},
		{Model{Name: "small", Role: RoleStudent}, "student:small", true},
		{Model{Name: BaselineName("small"), Role: RoleBaseline}, "baseline:small", true},
		{Model{Name: "odd", Role: RoleBaseline}, "", false},
		{Model{Name: Int8Name("small"), Role: RoleStudentInt8}, "quantize:small", true},
		{Model{Name: "q", Role: RoleTeacherInt8, Source: "teacher"}, "quantize:teacher", true},
		{Model{Name: "x", Role: "other"}, "", false},
	} {
		id, ok := MadeBy(tc.m)
		if ok != tc.ok || (ok && id.String() != tc.want) {
			t.Errorf("MadeBy(%s, %s) = %q, %v; want %q, %v", tc.m.Name, tc.m.Role, id, ok, tc.want, tc.ok)
		}
	}
}
