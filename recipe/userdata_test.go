package recipe

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestUserDataDefaults(t *testing.T) {
	r := mustParse(t, "seed: 7\ndata: {dataset: images, dir: /x}\n"+base)
	if d := r.Data; d.Channels != 1 || d.TestFraction != DefaultTestFraction || d.SplitSeed != 7 || d.X != "" {
		t.Errorf("images defaults: %+v", d)
	}
	r = mustParse(t, "data: {dataset: arrays, train_file: /a.npz}\n"+base)
	if d := r.Data; d.X != "x" || d.Y != "y" || d.Channels != 0 || d.TestFraction != DefaultTestFraction {
		t.Errorf("arrays defaults: %+v", d)
	}
	// MNIST recipes get none of the new keys, and keep their hashes.
	r = mustParse(t, base)
	if d := r.Data; d.X != "" || d.TestFraction != 0 || d.SplitSeed != 0 {
		t.Errorf("mnist got user-data defaults: %+v", d)
	}
	if in, classes := mustParse(t, "data: {dataset: fashion-mnist}\n"+base).Data.Shape(); !slices.Equal(in, []int{1, 28, 28}) || classes != 10 {
		t.Errorf("fashion-mnist shape %v, %d classes", in, classes)
	}
}

func TestUserDataProblems(t *testing.T) {
	for _, tc := range []struct {
		data string
		want []string
	}{
		{"{dataset: mnist, channels: 3, train_file: a.csv}", []string{
			"data.train_file: is only used with dataset: arrays or csv",
			"data.channels: is only used with dataset: images",
		}},
		{"{dataset: csv}", []string{"data.train_file: is required with dataset: csv"}},
		{"{dataset: arrays, train_file: a.npz, x: v, y: v}", []string{`data.y: names the same array as data.x ("v")`}},
		{"{dataset: images}", []string{"data.dir: is required with dataset: images"}},
		{"{dataset: images, dir: d, channels: 2, size: [8], mean: [0, 0, 0], std: [0]}", []string{
			"data.channels: must be 1 (gray) or 3 (RGB), got 2",
			"data.size: must be [height, width]",
			"data.mean: has 3 values",
			"data.std[0]: must be a finite number > 0, got 0",
		}},
		{"{dataset: csv, train_file: a.csv, test_fraction: 1}", []string{"data.test_fraction: must be between 0 and 1"}},
		{"{dataset: mnist, test_fraction: 0.1}", []string{"data.test_fraction: is only used with dataset: images or arrays or csv"}},
	} {
		_, err := Parse([]byte("data: "+tc.data+"\n"+base), "test.yaml")
		if err == nil {
			t.Errorf("%s: no problems", tc.data)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: problems\n%v\nlack %q", tc.data, err, w)
			}
		}
	}
	src := "data: {dataset: mnist}\ntransfer:\n  unlabelled: {dataset: csv}\n" + base
	if _, err := Parse([]byte(src), "test.yaml"); err == nil || !strings.Contains(err.Error(), "csv inputs are read from data.train_file") {
		t.Errorf("unlabelled csv with mnist data: %v", err)
	}
}

func TestUserDataFiles(t *testing.T) {
	r, dir := writeRecipe(t, "data: {dataset: csv, train_file: d/train.csv, test_file: d/test.csv}\n"+base, "d/train.csv")
	err := r.CheckFiles()
	if err == nil || !strings.Contains(err.Error(), "data.test_file") || strings.Contains(err.Error(), "data.train_file") ||
		!strings.Contains(err.Error(), filepath.Join(dir, "d", "test.csv")) {
		t.Errorf("CheckFiles: %v", err)
	}
	r, _ = writeRecipe(t, "data: {dataset: fashion-mnist, dir: nowhere}\n"+base)
	if err := r.CheckFiles(); err == nil || !strings.Contains(err.Error(), "dataset-fashion-mnist") {
		t.Errorf("fashion-mnist without files: %v", err)
	}
	r, _ = writeRecipe(t, "data: {dataset: images, dir: imgs}\n"+base, "imgs/readme.txt")
	if err := r.CheckFiles(); err == nil || !strings.Contains(err.Error(), "has no subfolders") {
		t.Errorf("image folder without classes: %v", err)
	}
}

// TestUserDataAugment: users' data has no shape until it is loaded, so
// augmentation is not refused for want of one (augment.New checks it at
// run time).
func TestUserDataAugment(t *testing.T) {
	src := "data: {dataset: images, dir: /x}\nteacher:\n  model: {hidden: [8]}\n  copies: 1\n  augment: {flip: true}\nstudents:\n  - name: s\n    model: {hidden: [4]}\n"
	if _, err := Parse([]byte(src), "test.yaml"); err != nil {
		t.Fatal(err)
	}
	src = "data: {dataset: synthetic, synthetic: {shape: [8]}}\nteacher:\n  model: {hidden: [8]}\n  copies: 1\n  augment: {flip: true}\nstudents:\n  - name: s\n    model: {hidden: [4]}\n"
	if _, err := Parse([]byte(src), "test.yaml"); err == nil || !strings.Contains(err.Error(), "augmentations work on images") {
		t.Fatalf("flip on flat synthetic data: %v", err)
	}
}
