package safetensors_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/distill-dev/distill/safetensors"
)

// A state dict as PyTorch writes it: float32 tensors named after the
// modules, and metadata {"format": "pt"}.
func Example() {
	f := &safetensors.File{
		Tensors: map[string]safetensors.Tensor{
			"fc1.weight": safetensors.F32([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
			"fc1.bias":   safetensors.F32([]int{2}, []float32{0.5, -0.5}),
		},
		Metadata: map[string]string{"format": "pt"},
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, f); err != nil {
		log.Fatal(err)
	}

	g, err := safetensors.Read(&buf, int64(buf.Len()))
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range g.Names() {
		t := g.Tensors[name]
		v, err := t.Float32()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(name, t.DType, t.Shape, v)
	}
	fmt.Println(g.Metadata)
	// Output:
	// fc1.bias F32 [2] [0.5 -0.5]
	// fc1.weight F32 [2 3] [1 2 3 4 5 6]
	// map[format:pt]
}

func ExampleWrite() {
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{
		"x": safetensors.I8([]int{2}, []int8{-1, 1}),
	}}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, f); err != nil {
		log.Fatal(err)
	}
	b := buf.Bytes()
	fmt.Printf("header length %d\n", b[0])
	fmt.Printf("header %q\n", b[8:8+b[0]])
	fmt.Printf("data % x\n", b[8+b[0]:])
	// Output:
	// header length 56
	// header "{\"x\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[0,2]}}   "
	// data ff 01
}

func ExampleReadFile() {
	dir, err := os.MkdirTemp("", "safetensors")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "half.safetensors")

	// Store float32 values as bfloat16, halving the size.
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{
		"w": safetensors.BF16([]int{3}, []float32{1, 0.1, -300}),
	}}
	if err := safetensors.WriteFile(path, f); err != nil {
		log.Fatal(err)
	}
	g, err := safetensors.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	v, err := g.Tensors["w"].Float32()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v)
	// Output: [1 0.100097656 -300]
}

func ExampleRead_corrupt() {
	// The header claims 2 tensors overlapping at bytes 4..8.
	hdr := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`
	file := append([]byte{byte(len(hdr)), 0, 0, 0, 0, 0, 0, 0}, hdr...)
	file = append(file, make([]byte, 8)...)
	_, err := safetensors.Read(bytes.NewReader(file), int64(len(file)))
	fmt.Println(err)
	// Output: safetensors: invalid data: tensor "b" at bytes [4, 8] overlaps tensor "a", which ends at 8
}
