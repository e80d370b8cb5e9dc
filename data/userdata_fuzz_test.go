package data

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzReadNPY checks that ReadNPY never panics, that a malformed input
// gives ErrNPYFormat (or a reader error, of which bytes.Reader has none),
// and that an accepted array's values match its shape.
func FuzzReadNPY(f *testing.F) {
	f.Add(npyBytes("<f4", []int{2}, f32Bytes(1, 2)))
	f.Add(npyBytes("|u1", []int{2, 2}, []byte{1, 2, 3, 4}))
	f.Add(npyBytes("<i8", []int{}, i64Bytes(5)))
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'descr':'<f2'}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := ReadNPY(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrNPYFormat) {
				t.Fatalf("error does not wrap ErrNPYFormat: %v", err)
			}
			return
		}
		n := 1
		for _, d := range a.Shape {
			n *= d
		}
		if len(a.Data) != n {
			t.Fatalf("shape %v but %d values", a.Shape, len(a.Data))
		}
	})
}

// FuzzParseCSV checks that parseCSV never panics and that an accepted
// table is rectangular.
func FuzzParseCSV(f *testing.F) {
	f.Add("a,b,label\n1,2,x\n3,4,y\n", "")
	f.Add("1,2,3\n4,5,6\n", "")
	f.Add("label,x\n0,1e3\n", "label")
	f.Add("\"a\n", "")
	f.Fuzz(func(t *testing.T, in, col string) {
		tab, err := parseCSV(strings.NewReader(in), col)
		if err != nil {
			return
		}
		if tab.width < 1 || len(tab.labels) == 0 || len(tab.x) != tab.width*len(tab.labels) {
			t.Fatalf("width %d, %d labels, %d values", tab.width, len(tab.labels), len(tab.x))
		}
		if _, _, err := csvClasses(tab.labels); err != nil && !strings.Contains(err.Error(), "class") {
			t.Fatalf("csvClasses: %v", err)
		}
	})
}
