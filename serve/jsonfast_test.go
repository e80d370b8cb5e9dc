package serve

import (
	"encoding/json"
	"math"
	"testing"
)

// TestParseFlatInputs: the bodies clients send take the fast path, with
// encoding/json's values; anything else is left to encoding/json.
func TestParseFlatInputs(t *testing.T) {
	for _, body := range []string{
		`{"inputs": [[0, 1.5, -2e-3]]}`,
		`{"inputs":[[0,1.5,-2E+3],[1e38,-0,3.4028234e38]]}`,
		" \n{ \"inputs\" :\t[ [ 1 , 2 , 3 ] , [4,5,6] ] }\r\n",
		`{"inputs": [[0.1, 0.2, 0.30000000000000004]]}`,
	} {
		x, n, ok := parseFlatInputs([]byte(body), 3)
		if !ok {
			t.Errorf("%s: not taken by the fast path", body)
			continue
		}
		var want struct{ Inputs [][]float32 }
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		if n != len(want.Inputs) || !sameFlat(x, want.Inputs) {
			t.Errorf("%s: got %d examples %v, encoding/json %v", body, n, x, want.Inputs)
		}
	}
	for _, body := range []string{
		`{"inputs": []}`, `{"inputs": [[1, 2]]}`, `{"inputs": [[1, 2, 3, 4]]}`, `{"inputs": [[[1, 2, 3]]]}`,
		`{"inputs": [[1, 2, 3]], "id": 7}`, `{"inputs": [[01, 2, 3]]}`, `{"inputs": [[+1, 2, 3]]}`,
		`{"inputs": [[.5, 2, 3]]}`, `{"inputs": [[1., 2, 3]]}`, `{"inputs": [[1e, 2, 3]]}`, `{"inputs": [[1e39, 2, 3]]}`,
		`{"inputs": [[NaN, 2, 3]]}`, `{"inputs": [[1, 2, 3]]} x`, `{"inputs": [[1, 2, 3],]}`, `{"inputs": [[1, 2, 3]]`,
		`{"input": [[1, 2, 3]]}`, `[[1, 2, 3]]`, ``,
	} {
		if _, _, ok := parseFlatInputs([]byte(body), 3); ok {
			t.Errorf("%s: taken by the fast path", body)
		}
	}
}

func sameFlat(x []float32, rows [][]float32) bool {
	i := 0
	for _, r := range rows {
		for _, v := range r {
			if i >= len(x) || math.Float32bits(x[i]) != math.Float32bits(v) {
				return false
			}
			i++
		}
	}
	return i == len(x)
}

// FuzzParseFlatInputs: whatever the fast path takes, encoding/json
// reads the same way: valid JSON, examples of 3 values, equal bits.
func FuzzParseFlatInputs(f *testing.F) {
	f.Add([]byte(`{"inputs": [[0, 1.5, -2e-3], [1, 2, 3]]}`))
	f.Add([]byte(`{"inputs":[[1e38,-0,3.4028234e38]]}`))
	f.Add([]byte(`{"inputs": [[1, 2, 3]], "x": 1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		x, n, ok := parseFlatInputs(body, 3)
		if !ok {
			return
		}
		var want struct{ Inputs [][]float32 }
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("%q: fast path took what encoding/json refuses: %v", body, err)
		}
		if n != len(want.Inputs) || !sameFlat(x, want.Inputs) {
			t.Fatalf("%q: fast path %d examples %v, encoding/json %v", body, n, x, want.Inputs)
		}
		for _, r := range want.Inputs {
			if len(r) != 3 {
				t.Fatalf("%q: took an example of %d values", body, len(r))
			}
		}
	})
}

// BenchmarkDecodeJSON parses an MNIST-sized example: the fast path
// against encoding/json, interleaved by the benchmark runner's order.
func BenchmarkDecodeJSON(b *testing.B) {
	x := make([]float32, 784)
	for i := range x {
		x[i] = float32(i%255) / 255
	}
	body := jsonBody(x, 1)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, _, ok := parseFlatInputs(body, 784); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var flat struct{ Inputs [][]float32 }
			if err := json.Unmarshal(body, &flat); err != nil {
				b.Fatal(err)
			}
		}
	})
}
