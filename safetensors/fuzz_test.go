package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read. Read must never panic, and
// whatever it accepts must survive Write and Read unchanged, with Write
// producing the same bytes again (its output is canonical).
func FuzzRead(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.safetensors"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed files in testdata (%v)", err)
	}
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, false, le(1)))
	f.Add(build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}}`, true, make([]byte, 8)))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var once bytes.Buffer
		if err := Write(&once, file); err != nil {
			t.Fatalf("Write of a file Read accepted: %v", err)
		}
		again, err := Read(bytes.NewReader(once.Bytes()), int64(once.Len()))
		if err != nil {
			t.Fatalf("Read of Write's output: %v", err)
		}
		assertEqual(t, again, file)
		var twice bytes.Buffer
		if err := Write(&twice, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("Write is not deterministic:\n%q\n%q", once.Bytes(), twice.Bytes())
		}
		// The typed accessors never panic either.
		for _, tt := range file.Tensors {
			tt.Float32()
			tt.Float64()
			tt.Int8()
			tt.Int32()
			tt.Bools()
		}
	})
}
