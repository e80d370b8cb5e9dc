package loss

import "math"

// Mixture writes p̄ = Σ_t w_t·softmax(z_t / T) into p: the weighted mean
// of several teachers' softened predictions for one example. rows[t] is
// teacher t's logits; teachers with weight 0 are skipped.
func Mixture(rows [][]float32, weights []float64, T float64, p []float64) {
	clear(p)
	q := make([]float64, len(p))
	for t, w := range weights {
		if w == 0 {
			continue
		}
		logSoftmax(rows[t], T, q)
		for j, v := range q {
			p[j] += w * math.Exp(v)
		}
	}
}

// EnsembleLogits writes into out logits whose softened prediction at
// temperature T is exactly the teachers' mixture p̄ (see Mixture):
//
//	z̄ = T · log p̄,  since softmax(z̄ / T)_j = p̄_j / Σ_k p̄_k = p̄_j.
//
// So the response objective, which softens teacher logits at T, distils
// from several teachers' averaged soft targets unchanged, as long as it
// uses the same T. (Averaging the logits instead would soften another
// distribution: the normalised geometric mean of the predictions.) A p̄_j
// that underflows is raised to the smallest positive float64 so that z̄
// stays finite. Weights should sum to 1.
func EnsembleLogits(rows [][]float32, weights []float64, T float64, out []float32) {
	p := make([]float64, len(out))
	Mixture(rows, weights, T, p)
	for j, v := range p {
		out[j] = float32(T * math.Log(max(v, math.SmallestNonzeroFloat64)))
	}
}
