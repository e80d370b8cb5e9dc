package inspect

import (
	"archive/zip"
	"io"
	"path/filepath"
	"testing"
)

// FuzzUnpickle: any data.pkl decodes or fails; none panics or loops.
func FuzzUnpickle(f *testing.F) {
	for _, name := range []string{"resnet.pt", "resnet_state_dict.pth"} {
		zr, err := zip.OpenReader(filepath.Join("../teacher/testdata/pytorch", name))
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range zr.File {
			if filepath.Base(e.Name) == "data.pkl" {
				r, err := e.Open()
				if err != nil {
					f.Fatal(err)
				}
				b, err := io.ReadAll(r)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
		zr.Close()
	}
	f.Add([]byte("\x80\x02(((((t."))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := unpickle(b)
		if err != nil {
			return
		}
		if _, _, err := archiveTensors(v, map[string][]string{}); err != nil {
			return
		}
	})
}
