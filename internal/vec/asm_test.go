package vec

import (
	"os"
	"strings"
	"testing"
)

// TestAsmShape checks vec_amd64.s statically, for what the differential
// tests cannot see on a CPU that happens to work: every conditional jump
// reads flags set by the CMPQ right before it (issue 15 was a jump on
// flags left by an earlier instruction), and every function clears the
// upper vector state (VZEROUPPER) before it returns, so that SSE code
// after it does not pay the AVX transition penalty.
func TestAsmShape(t *testing.T) {
	src, err := os.ReadFile("vec_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	var prev string
	funcs, jumps := 0, 0
	for n, line := range strings.Split(string(src), "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasSuffix(f[0], ":") || strings.HasPrefix(f[0], "#") {
			continue
		}
		op := f[0]
		switch {
		case op == "TEXT":
			funcs++
			prev = ""
			continue
		case op == "RET" && prev != "VZEROUPPER":
			t.Errorf("line %d: RET after %s, want VZEROUPPER", n+1, prev)
		case strings.HasPrefix(op, "J") && op != "JMP":
			jumps++
			if prev != "CMPQ" {
				t.Errorf("line %d: %s reads flags set by %s, want the CMPQ right before it", n+1, op, prev)
			}
		}
		prev = op
	}
	if funcs != 2 || jumps != 2 {
		t.Errorf("found %d functions and %d conditional jumps, want 2 and 2: update this test with the file", funcs, jumps)
	}
}
