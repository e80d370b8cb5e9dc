package gemm_test

import (
	"fmt"

	"github.com/distill-dev/distill/internal/gemm"
)

func ExamplePackF32() {
	// A linear layer with 2 outputs and 3 inputs: W is [out, in].
	w := []float32{
		1, 0, -1,
		0.5, 0.5, 0.5,
	}
	bias := []float32{0, -1}
	p := gemm.PackF32(w, 2, 3)

	x := []float32{1, 2, 3, 4, 5, 6} // two examples
	y := make([]float32, 2*2)
	p.Gemm(2, x, 3, y, 2, bias, true)
	fmt.Println(y)
	// Output: [0 2 0 6.5]
}

func ExamplePackI8() {
	w := []int8{1, -2, 3, 4, 5, -6, 7, 8} // [2 outputs, 4 inputs]
	p := gemm.PackI8(w, 2, 4)
	a := []uint8{10, 20, 30, 40} // one row; its length is KPad(4) = 4
	raw := make([]int32, 2)
	p.GemmI32(1, a, 4, raw, 2)

	// Dequantize: scale 0.5 per column, no offset.
	rq := &gemm.Requant{Offset: []int32{0, 0}, Scale: []float32{0.5, 0.5}}
	y := make([]float32, 2)
	p.GemmF32(1, a, 4, y, 2, rq)
	fmt.Println(raw, y)
	// Output: [220 460] [110 230]
}
