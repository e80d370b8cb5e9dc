package gemm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The x86 arithmetic flags that conditional instructions read.
const (
	fCF uint8 = 1 << iota
	fZF
	fSF
	fOF
	fPF
	fAll = fCF | fZF | fSF | fOF | fPF
)

// condFlags maps a Go assembler condition suffix (and its aliases) to the
// flags it reads.
var condFlags = map[string]uint8{
	"EQ": fZF, "Z": fZF, "E": fZF, "NE": fZF, "NZ": fZF,
	"CS": fCF, "LO": fCF, "B": fCF, "C": fCF, "NAE": fCF,
	"CC": fCF, "HS": fCF, "AE": fCF, "NB": fCF, "NC": fCF,
	"HI": fCF | fZF, "A": fCF | fZF, "NBE": fCF | fZF,
	"LS": fCF | fZF, "BE": fCF | fZF, "NA": fCF | fZF,
	"LT": fSF | fOF, "L": fSF | fOF, "NGE": fSF | fOF,
	"GE": fSF | fOF, "NL": fSF | fOF,
	"GT": fZF | fSF | fOF, "G": fZF | fSF | fOF, "NLE": fZF | fSF | fOF,
	"LE": fZF | fSF | fOF, "NG": fZF | fSF | fOF,
	"MI": fSF, "S": fSF, "PL": fSF, "NS": fSF,
	"OS": fOF, "O": fOF, "OC": fOF, "NO": fOF,
	"PS": fPF, "P": fPF, "PE": fPF, "PC": fPF, "NP": fPF, "PO": fPF,
}

// setsAll are the integer instructions (without their B/W/L/Q size) that
// define every arithmetic flag from their result; setsNotCF those that
// define all but CF (which they leave as it was).
var (
	setsAll   = []string{"ADD", "SUB", "CMP", "NEG", "AND", "OR", "XOR", "TEST", "ADC", "SBB"}
	setsNotCF = []string{"INC", "DEC"}
	// setsAllV are the vector instructions that set flags; every other
	// V-prefixed instruction leaves them alone.
	setsAllV = []string{"VPTEST", "VTESTPS", "VTESTPD", "VCOMISS", "VCOMISD", "VUCOMISS", "VUCOMISD"}
)

// sized reports whether op is base followed by an optional operand size.
func sized(op, base string) bool {
	if !strings.HasPrefix(op, base) {
		return false
	}
	s := op[len(base):]
	return s == "" || s == "B" || s == "W" || s == "L" || s == "Q"
}

func sizedIn(op string, bases []string) bool {
	for _, b := range bases {
		if sized(op, b) {
			return true
		}
	}
	return false
}

// flagsSet returns the flags that instruction op with operands args
// defines from its own operands. An instruction not known to set flags
// returns 0: the check is conservative, and a flag setter missing from
// these tables makes it reject code rather than accept it.
func flagsSet(op string, args []string) uint8 {
	switch {
	case sizedIn(op, setsAll), op == "POPFQ", op == "POPFL":
		return fAll
	case sizedIn(op, setsNotCF):
		return fAll &^ fCF
	case sizedIn(op, []string{"SHL", "SHR", "SAL", "SAR"}):
		// Only a constant, non-zero count is sure to write the flags (a
		// count of 0 leaves them all; one in CL may be 0). OF is defined
		// for a count of 1 only.
		if len(args) == 0 || !strings.HasPrefix(args[0], "$") {
			return 0
		}
		var n int
		if _, err := fmt.Sscan(strings.TrimPrefix(args[0], "$"), &n); err != nil || n&63 == 0 {
			return 0
		}
		if n&63 == 1 {
			return fAll
		}
		return fAll &^ fOF
	}
	for _, v := range setsAllV {
		if op == v {
			return fAll
		}
	}
	if strings.HasPrefix(op, "KORTEST") || strings.HasPrefix(op, "KTEST") {
		return fAll
	}
	return 0
}

// flagsRead returns the flags a conditional instruction reads and
// whether op is a conditional jump.
func flagsRead(op string) (read uint8, isJump bool) {
	if op == "JCXZL" || op == "JCXZQ" || op == "JCXZW" {
		return 0, true // reads CX, not the flags
	}
	if strings.HasPrefix(op, "J") && op != "JMP" {
		if f, ok := condFlags[op[1:]]; ok {
			return f, true
		}
	}
	if strings.HasPrefix(op, "SET") {
		return condFlags[op[3:]], false
	}
	if strings.HasPrefix(op, "CMOV") && len(op) > 5 {
		return condFlags[op[5:]], false // CMOV, size, condition
	}
	if sized(op, "ADC") || sized(op, "SBB") {
		return fCF, false
	}
	return 0, false
}

// asmStmt is one instruction or label of an assembly function.
type asmStmt struct {
	line  int
	label string // a label definition; the other fields are empty
	op    string
	args  []string
}

// asmFunc is the body of one TEXT symbol.
type asmFunc struct {
	name  string
	stmts []asmStmt
}

// directives emit no instruction: they neither set nor clear flags.
var directives = map[string]bool{"FUNCDATA": true, "PCDATA": true, "PCALIGN": true, "NO_LOCAL_POINTERS": true, "GO_ARGS": true}

// parseAsm splits Go assembler source into functions. Macros other than
// #include are refused: the checker would see the macro's name, not the
// instructions it expands to.
func parseAsm(src string) ([]asmFunc, error) {
	var funcs []asmFunc
	var cur *asmFunc
	for n, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			if strings.HasPrefix(line, "#include") {
				continue
			}
			return nil, fmt.Errorf("line %d: %q: the flag check does not expand macros", n+1, line)
		}
		for _, st := range strings.Split(line, ";") {
			st = strings.TrimSpace(st)
			for {
				// A label may share its line with an instruction.
				i := strings.Index(st, ":")
				if i <= 0 || strings.ContainsAny(st[:i], " \t,()$") {
					break
				}
				if cur == nil {
					return nil, fmt.Errorf("line %d: label %s outside a TEXT symbol", n+1, st[:i])
				}
				cur.stmts = append(cur.stmts, asmStmt{line: n + 1, label: st[:i]})
				st = strings.TrimSpace(st[i+1:])
			}
			if st == "" {
				continue
			}
			op, rest := st, ""
			if i := strings.IndexAny(st, " \t"); i >= 0 {
				op, rest = st[:i], st[i+1:]
			}
			op = strings.ToUpper(op)
			var args []string
			for _, a := range strings.Split(rest, ",") {
				if a = strings.TrimSpace(a); a != "" {
					args = append(args, a)
				}
			}
			switch {
			case op == "TEXT":
				name := ""
				if len(args) > 0 {
					name = args[0]
				}
				funcs = append(funcs, asmFunc{name: name})
				cur = &funcs[len(funcs)-1]
			case op == "DATA" || op == "GLOBL":
				cur = nil
			case directives[op]:
			case cur == nil:
				return nil, fmt.Errorf("line %d: %q outside a TEXT symbol", n+1, st)
			default:
				cur.stmts = append(cur.stmts, asmStmt{line: n + 1, op: op, args: args})
			}
		}
	}
	return funcs, nil
}

// checkFlags reports every instruction of f that reads a flag which the
// instruction before it, on some path, did not set. It is stricter than
// the CPU: only conditional jumps and labels may stand between the flag
// setter and the reader, so a MOV or a vector instruction in between is
// an error even though it preserves the flags. That is deliberate: in
// generated code, flags that survive a few unrelated instructions are
// flags computed for another purpose (in issue 15 the FP32 kernels' k loop
// branched on the ZF of an SHLQ that scaled lda).
//
// Each statement's in-state is the set of flags the nearest preceding
// instruction defined, intersected over every path into it (the
// fall-through and every jump to a label); the entry state is empty. The
// count of readers checked is returned so callers can tell the check ran.
func checkFlags(f asmFunc) (errs []string, readers int) {
	labels := map[string]int{}
	for i, s := range f.stmts {
		if s.label != "" {
			if _, dup := labels[s.label]; dup {
				errs = append(errs, fmt.Sprintf("%s line %d: label %s defined twice", f.name, s.line, s.label))
			}
			labels[s.label] = i
		}
	}
	// After a jump through a register or memory, any label may be next,
	// with whatever flags: then every label starts with none.
	indirect := false
	for _, s := range f.stmts {
		if s.op == "JMP" && len(s.args) == 1 && (isRegister(s.args[0]) || strings.HasPrefix(s.args[0], "(")) {
			indirect = true
		}
	}
	const unknown = 0xff // not yet reached: the identity of the intersection
	in := make([]uint8, len(f.stmts)+1)
	for i := range in {
		in[i] = unknown
	}
	in[0] = 0
	meet := func(i int, st uint8) bool {
		if in[i]&st != in[i] {
			in[i] &= st
			return true
		}
		return false
	}
	for changed := true; changed; {
		changed = false
		for i, s := range f.stmts {
			st := in[i]
			if st == unknown {
				continue
			}
			if s.label != "" {
				if indirect {
					st = 0
				}
				changed = meet(i+1, st) || changed
				continue
			}
			read, isJump := flagsRead(s.op)
			out := st
			switch {
			case isJump || s.op == "JMP":
				// A jump leaves the flags as they were, on every path.
			case read != 0 && flagsSet(s.op, s.args) == 0:
				// SETcc, CMOVcc: readers that preserve the flags.
			default:
				out = flagsSet(s.op, s.args)
			}
			if isJump || s.op == "JMP" {
				if len(s.args) == 1 {
					if t, ok := labels[s.args[0]]; ok {
						changed = meet(t, out) || changed
					}
				}
			}
			if s.op == "JMP" || s.op == "RET" || s.op == "UNDEF" {
				continue
			}
			changed = meet(i+1, out) || changed
		}
	}
	for i, s := range f.stmts {
		if s.label != "" {
			continue
		}
		read, isJump := flagsRead(s.op)
		if isJump || s.op == "JMP" {
			if len(s.args) == 1 && !strings.ContainsAny(s.args[0], "(·$") && !isRegister(s.args[0]) {
				if _, ok := labels[s.args[0]]; !ok {
					errs = append(errs, fmt.Sprintf("%s line %d: %s to %s, which is not a label of this function", f.name, s.line, s.op, s.args[0]))
				}
			}
		}
		if read == 0 {
			continue
		}
		readers++
		if in[i] == unknown {
			continue // unreachable
		}
		if missing := read &^ in[i]; missing != 0 {
			errs = append(errs, fmt.Sprintf("%s line %d: %s reads %s, which the instruction before it does not set on every path",
				f.name, s.line, s.op, flagNames(missing)))
		}
	}
	return errs, readers
}

func isRegister(s string) bool {
	switch {
	case len(s) == 2 && strings.Contains("ABCD", s[:1]) && (s[1] == 'X'),
		s == "SI", s == "DI", s == "BP", s == "SP",
		len(s) >= 2 && s[0] == 'R' && strings.Trim(s[1:], "0123456789") == "":
		return true
	}
	return false
}

func flagNames(f uint8) string {
	var out []string
	for i, n := range []string{"CF", "ZF", "SF", "OF", "PF"} {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, " and ")
}

// TestAsmBranchesOnOwnFlags checks every assembly file of the package
// (on any GOARCH: it reads the source) so that no kernel can again
// branch on flags left by its caller.
func TestAsmBranchesOnOwnFlags(t *testing.T) {
	files, err := filepath.Glob("*.s")
	if err != nil {
		t.Fatal(err)
	}
	nfunc, nread := 0, 0
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		funcs, err := parseAsm(string(src))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, f := range funcs {
			errs, readers := checkFlags(f)
			for _, e := range errs {
				t.Errorf("%s: %s", file, e)
			}
			nfunc++
			nread += readers
		}
	}
	// Guard against a vacuous pass (no files found, a parser that sees
	// no jumps): the kernels alone have well over a hundred.
	if nfunc < 48 || nread < 100 {
		t.Fatalf("checked %d functions and %d conditional instructions in %v; expected the generated kernels", nfunc, nread, files)
	}
	t.Logf("checked %d conditional instructions in %d functions of %v", nread, nfunc, files)
}

// TestFlagCheckDetects proves the checker on small programs: the bug of
// issue 15 and its relatives must be reported, correct code must not.
func TestFlagCheckDetects(t *testing.T) {
	cases := []struct {
		name, src string
		bad       bool
	}{
		{"issue 15: MOVQ then JZ at entry", `
TEXT ·k(SB), NOSPLIT, $0-8
	MOVQ k+0(FP), DX
	MOVQ DX, SI
	JZ k_tail
k_loop:
	DECQ SI
	JNZ k_loop
k_tail:
	RET`, true},
		{"fixed: TESTQ before JZ", `
TEXT ·k(SB), NOSPLIT, $0-8
	MOVQ k+0(FP), DX
	MOVQ DX, SI
	TESTQ SI, SI
	JZ k_tail
k_loop:
	VPXOR Y0, Y0, Y0
	DECQ SI
	JNZ k_loop
k_tail:
	RET`, false},
		{"unrelated setter before a flag-neutral instruction", `
TEXT ·k(SB), NOSPLIT, $0-8
	SHLQ $2, R8
	MOVQ DX, SI
	JZ done
done:
	RET`, true},
		{"label between setter and jump, one path unset", `
TEXT ·k(SB), NOSPLIT, $0-8
	TESTQ AX, AX
	JNZ other
again:
	JZ done
	RET
other:
	MOVQ BX, CX
	JMP again
done:
	RET`, true},
		{"label between setter and jump, every path set", `
TEXT ·k(SB), NOSPLIT, $0-8
	TESTQ AX, AX
	JNZ other
again:
	JZ done
	RET
other:
	CMPQ BX, CX
	JMP again
done:
	RET`, false},
		{"DECQ leaves CF", `
TEXT ·k(SB), NOSPLIT, $0-8
	DECQ AX
	JCS done
done:
	RET`, true},
		{"chained jumps on one compare", `
TEXT ·k(SB), NOSPLIT, $0-8
	CMPQ AX, BX
	JLT less
	JGT more
less:
more:
	RET`, false},
		{"shift by a register count may set nothing", `
TEXT ·k(SB), NOSPLIT, $0-8
	SHRQ CX, AX
	JZ done
done:
	RET`, true},
		{"shift by a constant sets ZF", `
TEXT ·k(SB), NOSPLIT, $0-8
	SHRQ $3, AX; JZ done
done:
	RET`, false},
		{"CALL clobbers", `
TEXT ·k(SB), NOSPLIT, $0-8
	CMPQ AX, $0
	CALL ·other(SB)
	JEQ done
done:
	RET`, true},
		{"hand-encoded instruction", `
TEXT ·k(SB), NOSPLIT, $0-8
	DECQ SI
	BYTE $0xC4; BYTE $0xE2
	JNZ done
done:
	RET`, true},
		{"jump to a label of another function", `
TEXT ·k(SB), NOSPLIT, $0-8
	TESTQ AX, AX
	JZ elsewhere
	RET`, true},
		{"vector test sets ZF", `
TEXT ·k(SB), NOSPLIT, $0-8
	VPTEST Y0, Y0
	JZ done
done:
	RET`, false},
	}
	for _, c := range cases {
		funcs, err := parseAsm(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(funcs) != 1 {
			t.Fatalf("%s: parsed %d functions", c.name, len(funcs))
		}
		errs, readers := checkFlags(funcs[0])
		if readers == 0 {
			t.Errorf("%s: found no conditional instruction", c.name)
		}
		if got := len(errs) > 0; got != c.bad {
			t.Errorf("%s: reported %v, want an error: %v", c.name, errs, c.bad)
		}
	}
	if _, err := parseAsm("#define X MOVQ AX, BX\nTEXT ·k(SB), $0\n\tX\n\tRET\n"); err == nil {
		t.Error("parseAsm accepted a macro definition")
	}
}
