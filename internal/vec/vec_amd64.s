//go:build amd64 && !purego

#include "textflag.h"

// Adam's fields, in order: WD, B1, OneMinusB1, B2, OneMinusB2,
// InvSqrtBC2, Eps, StepSize (float32 each). The operations are those of
// Adam.ref, one rounding each, in the same order.

// func adamAVX512(n int, w, grad, m, v *float32, a *Adam)
TEXT ·adamAVX512(SB), NOSPLIT, $0-48
	MOVQ n+0(FP), CX
	MOVQ w+8(FP), SI
	MOVQ grad+16(FP), DX
	MOVQ m+24(FP), R8
	MOVQ v+32(FP), R9
	MOVQ a+40(FP), AX
	VBROADCASTSS 0(AX), Z16  // WD
	VBROADCASTSS 4(AX), Z17  // B1
	VBROADCASTSS 8(AX), Z18  // 1-B1
	VBROADCASTSS 12(AX), Z19 // B2
	VBROADCASTSS 16(AX), Z20 // 1-B2
	VBROADCASTSS 20(AX), Z21 // 1/sqrt(bc2)
	VBROADCASTSS 24(AX), Z22 // eps
	VBROADCASTSS 28(AX), Z23 // step size
	VPXORD Z24, Z24, Z24
	XORQ BX, BX

loop512:
	CMPQ BX, CX
	JGE  done512
	VMOVUPS (SI)(BX*4), Z0   // w
	VMOVUPS (DX)(BX*4), Z1   // g
	VMULPS  Z16, Z0, Z2      // wd*w
	VADDPS  Z2, Z1, Z2       // gj = g + wd*w
	VMOVUPS (R8)(BX*4), Z3
	VMULPS  Z17, Z3, Z3      // b1*m
	VMULPS  Z18, Z2, Z4      // (1-b1)*gj
	VADDPS  Z4, Z3, Z3       // m
	VMOVUPS Z3, (R8)(BX*4)
	VMOVUPS (R9)(BX*4), Z5
	VMULPS  Z19, Z5, Z5      // b2*v
	VMULPS  Z20, Z2, Z6      // (1-b2)*gj
	VMULPS  Z2, Z6, Z6       // ·gj
	VADDPS  Z6, Z5, Z5       // v
	VMOVUPS Z5, (R9)(BX*4)
	VSQRTPS Z5, Z6
	VMULPS  Z21, Z6, Z6
	VADDPS  Z22, Z6, Z6      // denom
	VMULPS  Z23, Z3, Z7      // step*m
	VDIVPS  Z6, Z7, Z7       // step*m / denom
	VSUBPS  Z7, Z0, Z0       // w - that
	VMOVUPS Z0, (SI)(BX*4)
	VMOVUPS Z24, (DX)(BX*4)  // g = 0
	ADDQ    $16, BX
	JMP     loop512

done512:
	VZEROUPPER
	RET

// func adamAVX(n int, w, grad, m, v *float32, a *Adam)
TEXT ·adamAVX(SB), NOSPLIT, $0-48
	MOVQ n+0(FP), CX
	MOVQ w+8(FP), SI
	MOVQ grad+16(FP), DX
	MOVQ m+24(FP), R8
	MOVQ v+32(FP), R9
	MOVQ a+40(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	VBROADCASTSS 28(AX), Y15
	XORQ BX, BX

loopavx:
	CMPQ BX, CX
	JGE  doneavx
	VMOVUPS (SI)(BX*4), Y0
	VMOVUPS (DX)(BX*4), Y1
	VMULPS  Y8, Y0, Y2
	VADDPS  Y2, Y1, Y2
	VMOVUPS (R8)(BX*4), Y3
	VMULPS  Y9, Y3, Y3
	VMULPS  Y10, Y2, Y4
	VADDPS  Y4, Y3, Y3
	VMOVUPS Y3, (R8)(BX*4)
	VMOVUPS (R9)(BX*4), Y5
	VMULPS  Y11, Y5, Y5
	VMULPS  Y12, Y2, Y6
	VMULPS  Y2, Y6, Y6
	VADDPS  Y6, Y5, Y5
	VMOVUPS Y5, (R9)(BX*4)
	VSQRTPS Y5, Y6
	VMULPS  Y13, Y6, Y6
	VADDPS  Y14, Y6, Y6
	VMULPS  Y15, Y3, Y7
	VDIVPS  Y6, Y7, Y7
	VSUBPS  Y7, Y0, Y0
	VMOVUPS Y0, (SI)(BX*4)
	VXORPS  Y1, Y1, Y1
	VMOVUPS Y1, (DX)(BX*4)
	ADDQ    $8, BX
	JMP     loopavx

doneavx:
	VZEROUPPER
	RET
