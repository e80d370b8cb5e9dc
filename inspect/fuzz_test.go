package inspect

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// FuzzFile: any file is summarised or refused with an error; none panics.
func FuzzFile(f *testing.F) {
	for _, name := range []string{"resnet.safetensors", "resnet.onnx", "resnet.pt"} {
		b, err := os.ReadFile(filepath.Join("../teacher/testdata/pytorch", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, filepath.Ext(name))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, ext string) {
		if strings.ContainsAny(ext, "/\x00") || len(ext) > 16 {
			return
		}
		path := filepath.Join(dir, "m"+ext)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return
		}
		if s, err := File(path); err == nil {
			_ = s.String()
		}
	})
}
