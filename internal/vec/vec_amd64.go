//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

var (
	haveAVX    = cpu.X86.HasAVX
	haveAVX512 = cpu.X86.HasAVX512F
)

// adamAVX512 updates n elements, n a multiple of 16.
//
//go:noescape
func adamAVX512(n int, w, grad, m, v *float32, a *Adam)

// adamAVX updates n elements, n a multiple of 8.
//
//go:noescape
func adamAVX(n int, w, grad, m, v *float32, a *Adam)

// adamAsm updates the longest prefix the vector code handles and
// returns its length; the caller finishes the rest with the reference.
func adamAsm(a *Adam, w, g, m, v []float32) int {
	switch level() {
	case lvlAVX512:
		n := len(w) &^ 15
		if n > 0 {
			adamAVX512(n, &w[0], &g[0], &m[0], &v[0], a)
		}
		return n
	case lvlAVX:
		n := len(w) &^ 7
		if n > 0 {
			adamAVX(n, &w[0], &g[0], &m[0], &v[0], a)
		}
		return n
	}
	return 0
}
