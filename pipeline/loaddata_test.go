package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
)

const loadDataStudents = `
teacher: {model: {hidden: [8]}}
students:
  - name: s
    model: {hidden: [4]}
`

func loadDataRecipe(t *testing.T, dir, data string) recipe.Data {
	t.Helper()
	path := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(path, []byte("data: "+data+"\n"+loadDataStudents), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return r.Data
}

// TestLoadDataImageFolderSplit loads the committed 8x8 image folder
// (two classes of three) and checks the split by the seed.
func TestLoadDataImageFolderSplit(t *testing.T) {
	shapes, err := filepath.Abs("../data/testdata/shapes")
	if err != nil {
		t.Fatal(err)
	}
	d := loadDataRecipe(t, t.TempDir(), "{dataset: images, dir: "+shapes+", test_fraction: 0.34, size: [4, 4]}")
	train, test, err := pipeline.LoadData(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 4 || test.Len() != 2 || !slices.Equal(train.Shape, []int{1, 4, 4}) || train.Classes != 2 {
		t.Fatalf("train %d, test %d, shape %v, classes %d", train.Len(), test.Len(), train.Shape, train.Classes)
	}
	if slices.Sorted(slices.Values(test.Y))[0] != 0 || slices.Sorted(slices.Values(test.Y))[1] != 1 {
		t.Errorf("the split is not stratified: test labels %v", test.Y)
	}
	d.SplitSeed++
	other, _, err := pipeline.LoadData(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other.X, train.X) {
		t.Error("another split_seed gave the same training set")
	}
}

func TestLoadDataCSV(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("f1,f2,kind\n")
	for i := range 20 {
		b.WriteString([]string{"1,0,cat\n", "0,1,dog\n"}[i%2])
	}
	if err := os.WriteFile(filepath.Join(dir, "pets.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d := loadDataRecipe(t, dir, "{dataset: csv, train_file: pets.csv, train_limit: 4}")
	train, test, err := pipeline.LoadData(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	// 20% of each class is held out; the limit takes both classes, since
	// the split shuffles.
	if train.Len() != 4 || test.Len() != 4 || train.Classes != 2 || !slices.Contains(train.Y, 0) || !slices.Contains(train.Y, 1) {
		t.Fatalf("train %d %v, test %d", train.Len(), train.Y, test.Len())
	}
}

func TestLoadDataFashionMNISTAbsent(t *testing.T) {
	d := recipe.Data{Dataset: "fashion-mnist", Dir: filepath.Join(t.TempDir(), "none")}
	_, _, err := pipeline.LoadData(context.Background(), d)
	if err == nil || !strings.Contains(err.Error(), "dataset-fashion-mnist") || !strings.Contains(err.Error(), `load dataset "fashion-mnist"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestLoadDataUnlabelledImages: transfer.unlabelled's dataset is loaded
// with the recipe's data section, whose user-data defaults belong to
// another dataset.
func TestLoadDataUnlabelledImages(t *testing.T) {
	shapes, err := filepath.Abs("../data/testdata/shapes")
	if err != nil {
		t.Fatal(err)
	}
	d := recipe.Data{Dataset: "images", Dir: shapes}
	train, test, err := pipeline.LoadData(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len()+test.Len() != 6 || test.Len() != 2 {
		t.Fatalf("train %d, test %d", train.Len(), test.Len())
	}
}
