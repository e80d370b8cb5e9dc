package infer

import (
	"math"

	"github.com/distill-dev/distill/model"
)

// This file holds plain, per-example reference implementations that the
// compiled programs are tested against.

// refTensor is one example's activation: float64 values (float path) or
// uint8 values with their parameters (quantized path).
type refTensor struct {
	f     []float64
	u     []uint8
	q     QParams
	shape []int
}

// refForward runs one example through spec. With qm == nil it is the
// float64 reference of Compile; otherwise it mirrors the arithmetic of
// CompileInt8 exactly (int32 products, float32 requantization) for the
// quantized layers and uses float64 for the float ones.
func refForward(spec model.Spec, w model.Weights, qm *QuantModel, x []float32) []float64 {
	t := refTensor{f: make([]float64, len(x)), shape: spec.Input}
	for i, v := range x {
		t.f[i] = float64(v)
	}
	curQ := QParams{}
	if qm != nil {
		curQ = qm.Input
	}
	quantized := func(name string) bool {
		if qm == nil {
			return false
		}
		_, ok := qm.Layers[name]
		return ok
	}
	needsFloat := func(i int) bool {
		for k := i + 1; k < len(spec.Layers); k++ {
			switch l := spec.Layers[k]; l.Kind {
			case model.KindLinear, model.KindConv2D:
				return !quantized(l.Name)
			case model.KindTanh, model.KindSigmoid:
				_, ok := qm.Act[l.Name]
				return !ok
			}
		}
		return true
	}
	toFloat := func() {
		if t.u != nil {
			t.f = make([]float64, len(t.u))
			for i, q := range t.u {
				t.f[i] = float64(float32(int32(q)-t.q.ZeroPoint) * t.q.Scale)
			}
			t.u = nil
		}
	}
	toU8 := func() {
		if t.u == nil {
			inv := 1 / curQ.Scale
			t.u = make([]uint8, len(t.f))
			for i, v := range t.f {
				t.u[i] = refSat(float32(v)*inv, curQ.ZeroPoint, 0)
			}
			t.q, t.f = curQ, nil
		}
	}
	for i := 0; i < len(spec.Layers); i++ {
		l := spec.Layers[i]
		switch l.Kind {
		case model.KindDropout:
		case model.KindFlatten:
			t.shape = []int{model.Numel(t.shape)}
		case model.KindLinear, model.KindConv2D:
			relu := false
			if j := FusedReLU(spec.Layers, i); j >= 0 {
				relu = true
				i = j
			}
			// Patches: for each output position, the input indices (or -1
			// for padding) in weight order.
			var patches [][]int
			var outShape []int
			if l.Kind == model.KindLinear {
				idx := make([]int, t.shape[0])
				for k := range idx {
					idx[k] = k
				}
				patches = [][]int{idx}
				outShape = []int{l.Out}
			} else {
				c, h, wd := t.shape[0], t.shape[1], t.shape[2]
				st := max(l.Stride, 1)
				oh := (h+2*l.Padding-l.Kernel)/st + 1
				ow := (wd+2*l.Padding-l.Kernel)/st + 1
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						var idx []int
						for ci := 0; ci < c; ci++ {
							for ky := 0; ky < l.Kernel; ky++ {
								for kx := 0; kx < l.Kernel; kx++ {
									y, xx := oy*st-l.Padding+ky, ox*st-l.Padding+kx
									if y < 0 || y >= h || xx < 0 || xx >= wd {
										idx = append(idx, -1)
									} else {
										idx = append(idx, (ci*h+y)*wd+xx)
									}
								}
							}
						}
						patches = append(patches, idx)
					}
				}
				outShape = []int{l.Out, oh, ow}
			}
			npos := len(patches)
			if quantized(l.Name) {
				toU8()
				ql := qm.Layers[l.Name]
				fan := len(patches[0])
				outFloat := needsFloat(i)
				outQ := qm.Act[l.Name]
				lo := int32(0)
				if relu {
					lo = outQ.ZeroPoint
				}
				var nu []uint8
				var nf []float64
				if outFloat {
					nf = make([]float64, l.Out*npos)
				} else {
					nu = make([]uint8, l.Out*npos)
				}
				for c := 0; c < l.Out; c++ {
					var sum int32
					for k := 0; k < fan; k++ {
						sum += int32(ql.Weight[c*fan+k])
					}
					off := ql.Bias[c] - t.q.ZeroPoint*sum
					s := float64(t.q.Scale) * float64(ql.Scale[c])
					if !outFloat {
						s /= float64(outQ.Scale)
					}
					scale := float32(s)
					for p, idx := range patches {
						var acc int32
						for k, src := range idx {
							a := t.q.ZeroPoint
							if src >= 0 {
								a = int32(t.u[src])
							}
							acc += a * int32(ql.Weight[c*fan+k])
						}
						v := float32(acc+off) * scale
						if outFloat {
							if relu && !(v > 0) {
								v = 0
							}
							nf[c*npos+p] = float64(v)
						} else {
							nu[c*npos+p] = refSat(v, outQ.ZeroPoint, lo)
						}
					}
				}
				t = refTensor{f: nf, u: nu, q: outQ, shape: outShape}
				curQ = outQ
				break
			}
			toFloat()
			wt, bt := w[l.Name+".weight"].Data, w[l.Name+".bias"].Data
			fan := len(patches[0])
			nf := make([]float64, l.Out*npos)
			for c := 0; c < l.Out; c++ {
				for p, idx := range patches {
					s := float64(bt[c])
					for k, src := range idx {
						if src >= 0 {
							s += float64(wt[c*fan+k]) * t.f[src]
						}
					}
					if relu && s < 0 {
						s = 0
					}
					nf[c*npos+p] = s
				}
			}
			t = refTensor{f: nf, shape: outShape}
			if qm != nil {
				curQ = qm.Act[l.Name]
			}
		case model.KindMaxPool:
			c, h, wd := t.shape[0], t.shape[1], t.shape[2]
			st := l.Stride
			if st <= 0 {
				st = l.Kernel
			}
			oh, ow := (h-l.Kernel)/st+1, (wd-l.Kernel)/st+1
			n := c * oh * ow
			nt := refTensor{q: t.q, shape: []int{c, oh, ow}}
			if t.u != nil {
				nt.u = make([]uint8, n)
			} else {
				nt.f = make([]float64, n)
			}
			for ci := 0; ci < c; ci++ {
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						mf, mu := math.Inf(-1), uint8(0)
						for ky := 0; ky < l.Kernel; ky++ {
							for kx := 0; kx < l.Kernel; kx++ {
								src := (ci*h+oy*st+ky)*wd + ox*st + kx
								if t.u != nil {
									mu = max(mu, t.u[src])
								} else {
									mf = max(mf, t.f[src])
								}
							}
						}
						if t.u != nil {
							nt.u[(ci*oh+oy)*ow+ox] = mu
						} else {
							nt.f[(ci*oh+oy)*ow+ox] = mf
						}
					}
				}
			}
			t = nt
		case model.KindReLU, model.KindTanh, model.KindSigmoid:
			if t.u != nil {
				if l.Kind == model.KindReLU {
					for k, q := range t.u {
						t.u[k] = uint8(max(int32(q), t.q.ZeroPoint))
					}
					break
				}
				if oq, ok := qm.Act[l.Name]; ok {
					for k, q := range t.u {
						x := float64(t.q.Scale) * float64(int32(q)-t.q.ZeroPoint)
						y := math.Tanh(x)
						if l.Kind == model.KindSigmoid {
							y = 1 / (1 + math.Exp(-x))
						}
						t.u[k] = uint8(min(max(math.RoundToEven(y/float64(oq.Scale))+float64(oq.ZeroPoint), 0), 255))
					}
					t.q, curQ = oq, oq
					break
				}
				toFloat()
			}
			for k, v := range t.f {
				switch l.Kind {
				case model.KindReLU:
					t.f[k] = max(v, 0)
				case model.KindTanh:
					t.f[k] = math.Tanh(v)
				case model.KindSigmoid:
					t.f[k] = 1 / (1 + math.Exp(-v))
				}
			}
			if l.Kind != model.KindReLU && qm != nil {
				curQ = qm.Act[l.Name]
			}
		}
	}
	toFloat()
	return t.f
}

// refSat is the requantization rounding, written independently of
// package gemm's.
func refSat(v float32, zp, lo int32) uint8 {
	if math.IsNaN(float64(v)) || v > 32767 {
		v = 32767
	}
	if v < -32768 {
		v = -32768
	}
	q := int64(math.RoundToEven(float64(v))) + int64(zp)
	return uint8(min(max(q, int64(lo)), 255))
}
