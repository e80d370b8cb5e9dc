//go:build !amd64 || purego

package vec

const haveAVX, haveAVX512 = false, false

func adamAsm(*Adam, []float32, []float32, []float32, []float32) int { return 0 }
