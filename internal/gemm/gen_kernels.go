//go:build ignore

// gen_kernels writes kernels_amd64.s and kernels_amd64.go: the register-
// blocked micro-kernels of package gemm, one function per number of rows
// (1..MR) for each instruction set. Run it with go generate.
//
// Every kernel computes one MR×NR tile (r ≤ MR rows, NR columns of one
// packed panel of B) over the whole k range it is given. The A operand is
// read straight from the caller's row-major matrix: rows are addressed
// from up to four base registers, three rows per base (base, base+lda,
// base+2·lda).
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"strings"
)

// isa describes one family of kernels.
type isa struct {
	name   string // function name prefix
	vreg   string // "Y" or "Z"
	vbytes int    // bytes per vector register
	mr     int    // most rows
	// accumulator budget: registers 0..maxAcc-1 hold accumulators.
	maxAcc int
	bregs  [2]int // the two B vectors
	tregs  [2]int // broadcast / temporaries
	// feature names the instruction sets the kernels need; cpu is the Go
	// expression (over golang.org/x/sys/cpu) that reports them.
	feature, cpu string
	// narrow: kernels one vector wide (NR = vbytes/4 columns)
	// instead of two, for products with few output columns (the
	// channels of a small convolution), where half of a two-vector
	// tile would be multiplied by padding.
	narrow bool
}

// kernel records one emitted micro-kernel for the flag-call test table.
type kernel struct {
	name   string
	scheme string // "f32", "i16" (int16 A, int16 pairs of B) or "u8" (u8 A, s8 quads of B)
	rows   int
	nr     int
	x      isa
}

var kernels []kernel

var w = new(bytes.Buffer)

func p(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

// bases are the registers that point at rows 0, 3, 6 and 9 of the A tile.
var bases = []string{"AX", "BX", "R12", "R13"}

// rowAddr is the address of row i of A plus disp bytes.
func rowAddr(i, disp int) string {
	b := bases[i/3]
	d := ""
	if disp != 0 {
		d = fmt.Sprint(disp)
	}
	switch i % 3 {
	case 0:
		return fmt.Sprintf("%s(%s)", d, b)
	case 1:
		return fmt.Sprintf("%s(%s)(R8*1)", d, b)
	default:
		return fmt.Sprintf("%s(%s)(R8*2)", d, b)
	}
}

// unroll is how many independent accumulator sets a kernel of r rows
// keeps, so that at least eight multiply-add chains are in flight.
func unroll(r int) int {
	switch {
	case r == 1:
		return 4
	case r <= 3:
		return 2
	}
	return 1
}

func log2(n int) int {
	l := 0
	for 1<<l < n {
		l++
	}
	return l
}

// setupBases loads A and lda (scaled to bytes by shift) and derives the
// row base registers needed for r rows.
func setupBases(r, shift int) {
	p("\tMOVQ a+8(FP), AX")
	p("\tMOVQ lda+16(FP), R8")
	if shift > 0 {
		p("\tSHLQ $%d, R8", shift)
	}
	p("\tLEAQ (R8)(R8*2), R9") // 3·lda
	for b := 1; b*3 < r; b++ {
		p("\tLEAQ (%s)(R9*1), %s", bases[b-1], bases[b])
	}
}

func advanceBases(r, by int) {
	for b := 0; b*3 < r; b++ {
		p("\tADDQ $%d, %s", by, bases[b])
	}
}

// kloop emits the k loop: kreg holds the trip count; body(u) emits one
// step on accumulator set u at k offset u.
func kloop(label string, u int, body func(set, step int), advance func(steps int)) {
	lg := log2(u)
	p("\tMOVQ DX, SI")
	// The JZ must follow an instruction that sets ZF from the trip count:
	// MOVQ sets no flags, and without the TESTQ a kernel that does not
	// unroll branched on whatever its caller left in ZF, skipping the
	// loop (zeros) or running it 2⁶⁴ times (issue 15). asmflags_test.go
	// checks every conditional jump this way.
	if lg > 0 {
		p("\tSHRQ $%d, SI", lg)
	} else {
		p("\tTESTQ SI, SI")
	}
	p("\tJZ %s_tail", label)
	p("%s_loop:", label)
	for s := 0; s < u; s++ {
		body(s, s)
	}
	advance(u)
	p("\tDECQ SI")
	p("\tJNZ %s_loop", label)
	p("%s_tail:", label)
	if u > 1 {
		p("\tANDQ $%d, DX", u-1)
		p("\tJZ %s_done", label)
		p("%s_tailloop:", label)
		body(0, 0)
		advance(1)
		p("\tDECQ DX")
		p("\tJNZ %s_tailloop", label)
	}
	p("%s_done:", label)
}

func acc(x isa, r, set, row, half int) string {
	return fmt.Sprintf("%s%d", x.vreg, (set*r+row)*2+half)
}

func vr(x isa, n int) string { return fmt.Sprintf("%s%d", x.vreg, n) }

// f32Kernel emits C[r×NR] (op)= A[r×k]·Bpanel + epilogue.
//
//	func name(k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int)
//
// flags: 1 = add the existing C, 2 = add bias[0:NR], 4 = ReLU.
func f32Kernel(x isa, r int) {
	name := fmt.Sprintf("%s%d", x.name, r)
	u := unroll(r)
	halves := 2
	if x.narrow {
		halves = 1
	}
	if nacc := 2 * r * u; nacc > x.maxAcc {
		log.Fatalf("%s: %d accumulators", name, nacc)
	}
	bstep := halves * x.vbytes // bytes of B per k
	kernels = append(kernels, kernel{name: name, scheme: "f32", rows: r, nr: halves * x.vbytes / 4, x: x})
	p("// func %s(k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", name)
	p("\tMOVQ k+0(FP), DX")
	setupBases(r, 2)
	p("\tMOVQ b+24(FP), CX")
	for s := 0; s < u; s++ {
		for i := 0; i < r; i++ {
			for h := 0; h < halves; h++ {
				zero(x, acc(x, r, s, i, h))
			}
		}
	}
	b0, b1 := vr(x, x.bregs[0]), vr(x, x.bregs[1])
	kloop(name, u, func(set, step int) {
		p("\tVMOVUPS %d(CX), %s", step*bstep, b0)
		if halves == 2 {
			p("\tVMOVUPS %d(CX), %s", step*bstep+x.vbytes, b1)
		}
		// One broadcast load per row feeds both FMAs (an embedded
		// broadcast in each FMA would load every A value twice and make
		// the 12×32 kernel load-bound).
		for i := 0; i < r; i++ {
			t := vr(x, x.tregs[i%2])
			p("\tVBROADCASTSS %s, %s", rowAddr(i, 4*step), t)
			p("\tVFMADD231PS %s, %s, %s", b0, t, acc(x, r, set, i, 0))
			if halves == 2 {
				p("\tVFMADD231PS %s, %s, %s", b1, t, acc(x, r, set, i, 1))
			}
		}
	}, func(steps int) {
		advanceBases(r, 4*steps)
		p("\tADDQ $%d, CX", steps*bstep)
	})
	for s := 1; s < u; s++ {
		for i := 0; i < r; i++ {
			for h := 0; h < halves; h++ {
				p("\tVADDPS %s, %s, %s", acc(x, r, s, i, h), acc(x, r, 0, i, h), acc(x, r, 0, i, h))
			}
		}
	}
	p("\tMOVQ c+32(FP), DI")
	p("\tMOVQ ldc+40(FP), R9")
	p("\tSHLQ $2, R9")
	p("\tMOVQ flags+56(FP), R11")
	p("\tTESTQ $1, R11")
	p("\tJZ %s_noacc", name)
	p("\tMOVQ DI, SI")
	for i := 0; i < r; i++ {
		if i > 0 {
			p("\tADDQ R9, SI")
		}
		p("\tVADDPS (SI), %s, %s", acc(x, r, 0, i, 0), acc(x, r, 0, i, 0))
		if halves == 2 {
			p("\tVADDPS %d(SI), %s, %s", x.vbytes, acc(x, r, 0, i, 1), acc(x, r, 0, i, 1))
		}
	}
	p("%s_noacc:", name)
	p("\tTESTQ $2, R11")
	p("\tJZ %s_nobias", name)
	p("\tMOVQ bias+48(FP), R10")
	p("\tVMOVUPS (R10), %s", b0)
	if halves == 2 {
		p("\tVMOVUPS %d(R10), %s", x.vbytes, b1)
	}
	for i := 0; i < r; i++ {
		p("\tVADDPS %s, %s, %s", b0, acc(x, r, 0, i, 0), acc(x, r, 0, i, 0))
		if halves == 2 {
			p("\tVADDPS %s, %s, %s", b1, acc(x, r, 0, i, 1), acc(x, r, 0, i, 1))
		}
	}
	p("%s_nobias:", name)
	p("\tTESTQ $4, R11")
	p("\tJZ %s_norelu", name)
	z := vr(x, x.tregs[0])
	zero(x, z)
	for i := 0; i < r; i++ {
		// VMAXPS z, v, v is v > 0 ? v : 0 (NaN and -0 become +0).
		p("\tVMAXPS %s, %s, %s", z, acc(x, r, 0, i, 0), acc(x, r, 0, i, 0))
		if halves == 2 {
			p("\tVMAXPS %s, %s, %s", z, acc(x, r, 0, i, 1), acc(x, r, 0, i, 1))
		}
	}
	p("%s_norelu:", name)
	for i := 0; i < r; i++ {
		if i > 0 {
			p("\tADDQ R9, DI")
		}
		p("\tVMOVUPS %s, (DI)", acc(x, r, 0, i, 0))
		if halves == 2 {
			p("\tVMOVUPS %s, %d(DI)", acc(x, r, 0, i, 1), x.vbytes)
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// i8Kernel emits an int32 tile C[r×NR] = A·Bpanel for one of the integer
// schemes:
//
//	"avx2":     A is int16 (widened u8), B int16 pairs; VPMADDWD + VPADDD.
//	"vnni512":  A is u8, B s8 quads; VPDPBUSD zmm.
//	"avxvnni":  A is u8, B s8 quads; VEX-encoded VPDPBUSD ymm.
//
//	func name(kg int, a *T, lda int, b *T, c *int32, ldc int)
//
// kg counts k groups (pairs for avx2, quads for VNNI); lda is in elements
// of A's type, ldc in int32s.
func i8Kernel(x isa, scheme string, r int) {
	name := fmt.Sprintf("%s%d", x.name, r)
	u := 1
	if scheme != "avx2" {
		u = unroll(r)
	}
	halves := 2
	if x.narrow {
		if scheme != "vnni512" {
			log.Fatalf("%s: narrow kernels are vnni512 only", name)
		}
		halves = 1
	}
	if nacc := 2 * r * u; nacc > x.maxAcc {
		log.Fatalf("%s: %d accumulators", name, nacc)
	}
	bstep := halves * x.vbytes
	ashift, astep := 0, 4 // A bytes per k group: u8 quad or int16 pair = 4 bytes
	elem := "u8"
	if scheme == "avx2" {
		ashift, elem = 1, "i16"
	}
	kernels = append(kernels, kernel{name: name, scheme: elem, rows: r, nr: halves * x.vbytes / 4, x: x})
	p("// func %s(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-48", name)
	p("\tMOVQ kg+0(FP), DX")
	setupBases(r, ashift)
	p("\tMOVQ b+24(FP), CX")
	for s := 0; s < u; s++ {
		for i := 0; i < r; i++ {
			for h := 0; h < halves; h++ {
				zero(x, acc(x, r, s, i, h))
			}
		}
	}
	b0, b1 := vr(x, x.bregs[0]), vr(x, x.bregs[1])
	kloop(name, u, func(set, step int) {
		p("\tVMOVDQU%s %d(CX), %s", movSuffix(x), step*bstep, b0)
		if halves == 2 {
			p("\tVMOVDQU%s %d(CX), %s", movSuffix(x), step*bstep+x.vbytes, b1)
		}
		for i := 0; i < r; i++ {
			t := x.tregs[i%2]
			if scheme == "avx2" {
				t = x.tregs[0] // tregs[1] holds the products
			}
			p("\tVPBROADCASTD %s, %s", rowAddr(i, astep*step), vr(x, t))
			a0, a1 := acc(x, r, set, i, 0), acc(x, r, set, i, 1)
			switch scheme {
			case "avx2":
				prod := vr(x, x.tregs[1])
				if t == x.tregs[1] {
					log.Fatal("avx2 scheme uses treg 1 as product")
				}
				p("\tVPMADDWD %s, %s, %s", b0, vr(x, t), prod)
				p("\tVPADDD %s, %s, %s", prod, a0, a0)
				p("\tVPMADDWD %s, %s, %s", b1, vr(x, t), prod)
				p("\tVPADDD %s, %s, %s", prod, a1, a1)
			case "vnni512":
				p("\tVPDPBUSD %s, %s, %s", b0, vr(x, t), a0)
				if halves == 2 {
					p("\tVPDPBUSD %s, %s, %s", b1, vr(x, t), a1)
				}
			case "avxvnni":
				p("\t%s", vexVPDPBUSD(regNum(a0), t, x.bregs[0]))
				p("\t%s", vexVPDPBUSD(regNum(a1), t, x.bregs[1]))
			}
		}
	}, func(steps int) {
		advanceBases(r, astep*steps)
		p("\tADDQ $%d, CX", steps*bstep)
	})
	for s := 1; s < u; s++ {
		for i := 0; i < r; i++ {
			for h := 0; h < halves; h++ {
				p("\tVPADDD %s, %s, %s", acc(x, r, s, i, h), acc(x, r, 0, i, h), acc(x, r, 0, i, h))
			}
		}
	}
	p("\tMOVQ c+32(FP), DI")
	p("\tMOVQ ldc+40(FP), R9")
	p("\tSHLQ $2, R9")
	for i := 0; i < r; i++ {
		if i > 0 {
			p("\tADDQ R9, DI")
		}
		p("\tVMOVDQU%s %s, (DI)", movSuffix(x), acc(x, r, 0, i, 0))
		if halves == 2 {
			p("\tVMOVDQU%s %s, %d(DI)", movSuffix(x), acc(x, r, 0, i, 1), x.vbytes)
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// zero clears a vector register (VPXORD for zmm: VXORPS zmm needs AVX512DQ).
func zero(x isa, r string) {
	if x.vreg == "Z" {
		p("\tVPXORD %s, %s, %s", r, r, r)
		return
	}
	p("\tVPXOR %s, %s, %s", r, r, r)
}

func movSuffix(x isa) string {
	if x.vreg == "Z" {
		return "32"
	}
	return ""
}

func regNum(s string) int {
	var n int
	fmt.Sscanf(s[1:], "%d", &n)
	return n
}

// vexVPDPBUSD encodes the AVX-VNNI instruction
//
//	VPDPBUSD ymm(dst), ymm(src1: unsigned bytes), ymm(src2: signed bytes)
//
// (VEX.256.66.0F38.W0 50 /r), which the Go assembler only knows in its
// EVEX (AVX-512) form.
func vexVPDPBUSD(dst, src1, src2 int) string {
	inv := func(b int) int { return 1 - b }
	r := (dst >> 3) & 1
	b := (src2 >> 3) & 1
	byte1 := inv(r)<<7 | 1<<6 | inv(b)<<5 | 0x02 // R̄ X̄ B̄ mmmmm=0F38
	byte2 := 0<<7 | (^src1&15)<<3 | 1<<2 | 0x01  // W=0 v̄vvv L=1 pp=66
	modrm := 0xC0 | (dst&7)<<3 | (src2 & 7)      // register form
	return fmt.Sprintf("BYTE $0xC4; BYTE $0x%02X; BYTE $0x%02X; BYTE $0x50; BYTE $0x%02X // VPDPBUSD Y%d, Y%d, Y%d (dst, u8, s8)",
		byte1, byte2, modrm, dst, src1, src2)
}

// epilogues emits the vectorised AVX2 helpers (8 elements per step;
// callers handle the tail in Go).
// requantConsts loads what both uint8 requantize routines keep in
// registers: the zero point (Y10, read by the caller into AX), the lower
// clamp from the argument at loOffset (X11), and the int16 clamps (Y8, Y9).
func requantConsts(loOffset int) string {
	return fmt.Sprintf(`	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	MOVQ lo+%d(FP), AX
	VMOVD AX, X11
	VPBROADCASTB X11, X11
	MOVL $0x46fffe00, AX // 32767.0
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0xc7000000, AX // -32768.0
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
`, loOffset)
}

// requantStep requantizes 8 int32 accumulators at (acc) to 8 uint8 at
// (out), with offsets at (R8) and scales at (R9), and advances all four.
func requantStep(acc, out string) string {
	return fmt.Sprintf(`	VMOVDQU (%[1]s), Y0
	VPADDD (R8), Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS (R9), Y0, Y0
	VMINPS Y8, Y0, Y0
	VMAXPS Y9, Y0, Y0
	VCVTPS2DQ Y0, Y0
	VPADDD Y10, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0
	VPACKUSWB X0, X0, X0
	VPMAXUB X11, X0, X0
	VMOVQ X0, (%[2]s)
	ADDQ $32, %[1]s
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $8, %[2]s
`, acc, out)
}

func epilogues() {
	// requantU8AVX2(n int, acc *int32, off *int32, scale *float32, out *uint8, zp int, lo int)
	p(`// func requantU8AVX2(n int, acc *int32, off *int32, scale *float32, out *uint8, zp int, lo int)
TEXT ·requantU8AVX2(SB), NOSPLIT, $0-56
	MOVQ n+0(FP), DX
	MOVQ acc+8(FP), SI
	MOVQ off+16(FP), R8
	MOVQ scale+24(FP), R9
	MOVQ out+32(FP), DI
	MOVQ zp+40(FP), AX
` + requantConsts(48) + `	SHRQ $3, DX
	JZ rq_done
rq_loop:
` + requantStep("SI", "DI") + `	DECQ DX
	JNZ rq_loop
rq_done:
	VZEROUPPER
	RET

// func requantU8RowsAVX2(rows int, n int, acc *int32, accStride int, off *int32, scale *float32, out *uint8, outStride int, zp int, lo int)
// requantU8AVX2 over rows rows in one call (acc rows accStride int32s
// apart, out rows outStride bytes apart): narrow products have rows of 8
// to 32 columns, too short to pay for a call each.
TEXT ·requantU8RowsAVX2(SB), NOSPLIT, $0-80
	MOVQ rows+0(FP), BX
	MOVQ n+8(FP), DX
	MOVQ acc+16(FP), SI
	MOVQ accStride+24(FP), R10
	SHLQ $2, R10
	MOVQ out+48(FP), DI
	MOVQ outStride+56(FP), R11
	MOVQ zp+64(FP), AX
` + requantConsts(72) + `	SHRQ $3, DX
	JZ rr_done
	TESTQ BX, BX
	JZ rr_done
rr_row:
	MOVQ DX, CX
	MOVQ SI, R12
	MOVQ DI, R13
	MOVQ off+32(FP), R8
	MOVQ scale+40(FP), R9
rr_loop:
` + requantStep("R12", "R13") + `	DECQ CX
	JNZ rr_loop
	ADDQ R10, SI
	ADDQ R11, DI
	DECQ BX
	JNZ rr_row
rr_done:
	VZEROUPPER
	RET

// func dequantF32AVX2(n int, acc *int32, off *int32, scale *float32, out *float32, relu int)
TEXT ·dequantF32AVX2(SB), NOSPLIT, $0-48
	MOVQ n+0(FP), DX
	MOVQ acc+8(FP), SI
	MOVQ off+16(FP), R8
	MOVQ scale+24(FP), R9
	MOVQ out+32(FP), DI
	MOVQ relu+40(FP), AX
	VXORPS Y9, Y9, Y9
	SHRQ $3, DX
	JZ dq_done
	TESTQ AX, AX
	JNZ dq_relu
dq_loop:
	VMOVDQU (SI), Y0
	VPADDD (R8), Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS (R9), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, DI
	DECQ DX
	JNZ dq_loop
	JMP dq_done
dq_relu:
	VMOVDQU (SI), Y0
	VPADDD (R8), Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS (R9), Y0, Y0
	VMAXPS Y9, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, DI
	DECQ DX
	JNZ dq_relu
dq_done:
	VZEROUPPER
	RET

// func quantU8AVX2(n int, x *float32, inv float32, zp int, out *uint8)
TEXT ·quantU8AVX2(SB), NOSPLIT, $0-40
	MOVQ n+0(FP), DX
	MOVQ x+8(FP), SI
	VBROADCASTSS inv+16(FP), Y7
	MOVQ zp+24(FP), AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	MOVQ out+32(FP), DI
	MOVL $0x46fffe00, AX // 32767.0
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0xc7000000, AX // -32768.0
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
	SHRQ $3, DX
	JZ q_done
q_loop:
	VMULPS (SI), Y7, Y0
	VMINPS Y8, Y0, Y0
	VMAXPS Y9, Y0, Y0
	VCVTPS2DQ Y0, Y0
	VPADDD Y10, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0
	VPACKUSWB X0, X0, X0
	VMOVQ X0, (DI)
	ADDQ $32, SI
	ADDQ $8, DI
	DECQ DX
	JNZ q_loop
q_done:
	VZEROUPPER
	RET

// func widenU8AVX2(n int, src *uint8, dst *int16)
TEXT ·widenU8AVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), DX
	MOVQ src+8(FP), SI
	MOVQ dst+16(FP), DI
	SHRQ $4, DX
	JZ w_done
w_loop:
	VPMOVZXBW (SI), Y0
	VMOVDQU Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ DX
	JNZ w_loop
w_done:
	VZEROUPPER
	RET
`)
}

var (
	f32AVX2 = isa{name: "f32AVX2x", vreg: "Y", vbytes: 32, mr: 6, maxAcc: 12, bregs: [2]int{12, 13}, tregs: [2]int{14, 15},
		feature: "AVX2 and FMA", cpu: "cpu.X86.HasAVX2 && cpu.X86.HasFMA"}
	f32AVX512 = isa{name: "f32AVX512x", vreg: "Z", vbytes: 64, mr: 12, maxAcc: 24, bregs: [2]int{24, 25}, tregs: [2]int{26, 27},
		feature: "AVX-512F", cpu: "cpu.X86.HasAVX512F"}
	f32AVX512N = isa{name: "f32AVX512Nx", vreg: "Z", vbytes: 64, mr: 12, maxAcc: 24, bregs: [2]int{24, 25}, tregs: [2]int{26, 27},
		feature: "AVX-512F", cpu: "cpu.X86.HasAVX512F", narrow: true}
	i8AVX2 = isa{name: "i8AVX2x", vreg: "Y", vbytes: 32, mr: 6, maxAcc: 12, bregs: [2]int{12, 13}, tregs: [2]int{14, 15},
		feature: "AVX2", cpu: "cpu.X86.HasAVX2"}
	i8VNNI512 = isa{name: "i8VNNI512x", vreg: "Z", vbytes: 64, mr: 12, maxAcc: 24, bregs: [2]int{24, 25}, tregs: [2]int{28, 29},
		feature: "AVX-512F and AVX-512 VNNI", cpu: "cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI"}
	i8VNNI512N = isa{name: "i8VNNI512Nx", vreg: "Z", vbytes: 64, mr: 12, maxAcc: 24, bregs: [2]int{24, 25}, tregs: [2]int{28, 29},
		feature: "AVX-512F and AVX-512 VNNI", cpu: "cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI", narrow: true}
	i8AVXVNNI = isa{name: "i8AVXVNNIx", vreg: "Y", vbytes: 32, mr: 6, maxAcc: 12, bregs: [2]int{12, 13}, tregs: [2]int{14, 15},
		feature: "AVX2 and AVX-VNNI", cpu: "cpu.X86.HasAVX2 && cpu.X86.HasAVXVNNI"}
)

func main() {
	p("// Code generated by gen_kernels.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64 && !purego")
	p("")
	p(`#include "textflag.h"`)
	p("")
	for r := 1; r <= f32AVX2.mr; r++ {
		f32Kernel(f32AVX2, r)
	}
	for r := 1; r <= f32AVX512.mr; r++ {
		f32Kernel(f32AVX512, r)
	}
	for r := 1; r <= i8AVX2.mr; r++ {
		i8Kernel(i8AVX2, "avx2", r)
	}
	for r := 1; r <= i8VNNI512.mr; r++ {
		i8Kernel(i8VNNI512, "vnni512", r)
	}
	for r := 1; r <= i8AVXVNNI.mr; r++ {
		i8Kernel(i8AVXVNNI, "avxvnni", r)
	}
	for r := 1; r <= i8VNNI512N.mr; r++ {
		i8Kernel(i8VNNI512N, "vnni512", r)
	}
	for r := 1; r <= f32AVX512N.mr; r++ {
		f32Kernel(f32AVX512N, r)
	}
	epilogues()
	if err := os.WriteFile("kernels_amd64.s", w.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}

	// Go declarations and kernel tables.
	var g strings.Builder
	gp := goFile(&g)
	gp(`import "unsafe"`)
	gp("")
	gp("var _ unsafe.Pointer")
	gp("")
	for _, x := range []isa{f32AVX2, f32AVX512, f32AVX512N} {
		for r := 1; r <= x.mr; r++ {
			gp("//go:noescape")
			gp("func %s%d(k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int)", x.name, r)
			gp("")
		}
		gp("var %sKernels = [...]f32Kernel{", x.name)
		for r := 1; r <= x.mr; r++ {
			gp("\t%s%d,", x.name, r)
		}
		gp("}")
		gp("")
	}
	for _, x := range []isa{i8AVX2, i8VNNI512, i8AVXVNNI, i8VNNI512N} {
		for r := 1; r <= x.mr; r++ {
			gp("//go:noescape")
			gp("func %s%d(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int)", x.name, r)
			gp("")
		}
		gp("var %sKernels = [...]i8Kernel{", x.name)
		for r := 1; r <= x.mr; r++ {
			gp("\t%s%d,", x.name, r)
		}
		gp("}")
		gp("")
	}
	gp(`//go:noescape
func requantU8AVX2(n int, acc *int32, off *int32, scale *float32, out *uint8, zp int, lo int)

//go:noescape
func requantU8RowsAVX2(rows int, n int, acc *int32, accStride int, off *int32, scale *float32, out *uint8, outStride int, zp int, lo int)

//go:noescape
func dequantF32AVX2(n int, acc *int32, off *int32, scale *float32, out *float32, relu int)

//go:noescape
func quantU8AVX2(n int, x *float32, inv float32, zp int, out *uint8)

//go:noescape
func widenU8AVX2(n int, src *uint8, dst *int16)`)
	if err := os.WriteFile("kernels_amd64.go", []byte(g.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	flagCall()
}

// statusFlags are the arithmetic flags of RFLAGS: CF, PF, AF, ZF, SF, OF.
const statusFlags = 0x8d5

// flagCall writes flagcall_amd64.s and flagcall_amd64.go: the entry
// address of every kernel and two trampolines that set the arithmetic
// flags to chosen values and then call a kernel at its address. A test
// calls each kernel with the flags set and clear and compares the tiles:
// a kernel must never branch on flags it did not set itself (issue 15:
// the k loop read the caller's ZF and stored zeros).
//
// Calling by address from assembly is what makes the flags reach the
// kernel untouched: a call through a Go func value goes through the
// compiler's ABIInternal-to-ABI0 wrapper, whose own instructions (a stack
// adjustment, coverage counters under -d=libfuzzer) decide the flags.
func flagCall() {
	w.Reset()
	p("// Code generated by gen_kernels.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64 && !purego")
	p("")
	p(`#include "textflag.h"`)
	p(`#include "funcdata.h"`)
	p("")
	p("// func asmKernelPCs(pcs *[%d]uintptr)", len(kernels))
	p("TEXT ·asmKernelPCs(SB), NOSPLIT, $0-8")
	p("\tMOVQ pcs+0(FP), DI")
	for i, k := range kernels {
		p("\tMOVQ $·%s(SB), AX", k.name)
		p("\tMOVQ AX, %d(DI)", 8*i)
	}
	p("\tRET")
	p("")
	// The trampolines copy the kernel's arguments to their outgoing
	// argument area, then load RFLAGS with its arithmetic flags replaced
	// by status (the system flags, DF among them, kept) right before the
	// CALL, so that no instruction runs between the two.
	tramp := func(name string, args []string) {
		size := 8 * len(args)
		p("TEXT ·%s(SB), NOSPLIT, $%d-%d", name, size, size+16)
		p("\tNO_LOCAL_POINTERS")
		for i, a := range args {
			p("\tMOVQ %s+%d(FP), AX", a, 16+8*i)
			p("\tMOVQ AX, %d(SP)", 8*i)
		}
		p("\tMOVQ pc+0(FP), R10")
		p("\tMOVQ status+8(FP), BX")
		p("\tANDQ $0x%x, BX", statusFlags)
		p("\tPUSHFQ")
		p("\tPOPQ AX")
		p("\tANDQ $~0x%x, AX", statusFlags)
		p("\tORQ BX, AX")
		p("\tPUSHQ AX")
		p("\tPOPFQ")
		p("\tCALL R10")
		p("\tRET")
		p("")
	}
	p("// func callF32WithFlags(pc uintptr, status uintptr, k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int)")
	tramp("callF32WithFlags", []string{"k", "a", "lda", "b", "c", "ldc", "bias", "flags"})
	p("// func callI8WithFlags(pc uintptr, status uintptr, kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int)")
	tramp("callI8WithFlags", []string{"kg", "a", "lda", "b", "c", "ldc"})
	p(`// func flagsProbe(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int)
TEXT ·flagsProbe(SB), NOSPLIT, $0-48
	PUSHFQ
	POPQ AX
	MOVQ c+32(FP), DI
	MOVL AX, (DI)
	RET

// func flagsProbePC() uintptr
TEXT ·flagsProbePC(SB), NOSPLIT, $0-8
	MOVQ $·flagsProbe(SB), AX
	MOVQ AX, ret+0(FP)
	RET`)
	if err := os.WriteFile("flagcall_amd64.s", w.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}

	var g strings.Builder
	gp := goFile(&g)
	gp("import (")
	gp("\t\"unsafe\"")
	gp("")
	gp("\t\"golang.org/x/sys/cpu\"")
	gp(")")
	gp("")
	gp(`// asmKernel describes one generated micro-kernel for the test that calls
// each kernel at its address with the arithmetic flags set and clear.
type asmKernel struct {
	name    string
	scheme  string // "f32"; "i16": int16 A and int16 pairs of B; "u8": u8 A and s8 quads of B
	rows    int    // rows of its tile
	nr      int    // columns of its tile
	feature string // the instruction sets it needs
	ok      bool   // whether this CPU has them
}

// asmKernels lists the kernels in the order of asmKernelPCs.
var asmKernels = [...]asmKernel{`)
	for _, k := range kernels {
		gp("\t{name: %q, scheme: %q, rows: %d, nr: %d, feature: %q, ok: %s},", k.name, k.scheme, k.rows, k.nr, k.x.feature, k.x.cpu)
	}
	gp("}")
	gp("")
	gp(`// statusFlags are the arithmetic flags of RFLAGS: CF, PF, AF, ZF, SF, OF.
const statusFlags = 0x%x

// asmKernelPCs stores the entry address of each of asmKernels.
//
//go:noescape
func asmKernelPCs(pcs *[%d]uintptr)

// callF32WithFlags calls the f32Kernel at pc with the arithmetic flags
// (statusFlags) set as in status and the other flags unchanged.
//
//go:noescape
func callF32WithFlags(pc uintptr, status uintptr, k int, a *float32, lda int, b *float32, c *float32, ldc int, bias *float32, flags int)

// callI8WithFlags calls the i8Kernel at pc with the arithmetic flags set
// as in status.
//
//go:noescape
func callI8WithFlags(pc uintptr, status uintptr, kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int)

// flagsProbe has an i8Kernel's signature and stores the low 32 bits of
// RFLAGS at entry in c[0]: it shows that the trampolines deliver the
// flags they are asked for.
//
//go:noescape
func flagsProbe(kg int, a unsafe.Pointer, lda int, b unsafe.Pointer, c *int32, ldc int)

// flagsProbePC is the entry address of flagsProbe.
func flagsProbePC() uintptr`, statusFlags, len(kernels))
	if err := os.WriteFile("flagcall_amd64.go", []byte(g.String()), 0o644); err != nil {
		log.Fatal(err)
	}
}

// goFile returns a printf into g, which it starts as a generated Go file
// of package gemm for amd64.
func goFile(g *strings.Builder) func(format string, args ...any) {
	gp := func(format string, args ...any) { fmt.Fprintf(g, format+"\n", args...) }
	gp("// Code generated by gen_kernels.go; DO NOT EDIT.")
	gp("")
	gp("//go:build amd64 && !purego")
	gp("")
	gp("package gemm")
	gp("")
	return gp
}
