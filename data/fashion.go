package data

import (
	"fmt"

	"github.com/distill-dev/distill/internal/fileio"
)

// FashionMNISTDebianDir is where Debian's dataset-fashion-mnist package
// installs Fashion-MNIST's four gzipped IDX files.
const FashionMNISTDebianDir = "/usr/share/datasets/fashion-mnist"

// fashionSource pins Fashion-MNIST (Xiao et al. 2017,
// https://github.com/zalandoresearch/fashion-mnist). The hashes are of the
// decompressed IDX content of the files in Debian's dataset-fashion-mnist
// 0.0~git20200523.55506a9-1, which packages the upstream files; they are
// pinned decompressed because Debian's gzip bytes differ from upstream's
// (the .gz files are 24 bytes shorter) while the content does not.
var fashionSource = mnistConfig{
	name:  "fashion-mnist",
	title: "Fashion-MNIST",
	absent: "install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist, which puts them in " +
		FashionMNISTDebianDir + "), or pass --data-dir (data.dir) a directory holding them, e.g. from https://github.com/zalandoresearch/fashion-mnist",
	files: [4]mnistFile{
		{name: "train-images-idx3-ubyte", idxSHA256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"},
		{name: "train-labels-idx1-ubyte", idxSHA256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"},
		{name: "t10k-images-idx3-ubyte", idxSHA256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"},
		{name: "t10k-labels-idx1-ubyte", idxSHA256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
	},
	trainN:  60000,
	testN:   10000,
	rows:    28,
	cols:    28,
	classes: 10,
}

// FashionMNISTClasses names Fashion-MNIST's labels 0-9.
var FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// LoadFashionMNIST returns Fashion-MNIST's 60000 training and 10000 test
// examples as datasets named "fashion-mnist" of shape [1, 28, 28] with 10
// classes and pixel values byte/255. It reads the four IDX files
// (gzipped or not, named as MNIST's) from dir, or, when dir is "", from
// [FashionMNISTDebianDir]. Each file's content is checked against a
// pinned SHA-256 (a mismatch wraps [ErrChecksum]); for other data in
// the same format use [LoadIDXDir]. Nothing is downloaded.
func LoadFashionMNIST(dir string) (train, test *Dataset, err error) {
	return loadFashion(dir, fashionSource)
}

func loadFashion(dir string, cfg mnistConfig) (train, test *Dataset, err error) {
	if dir == "" {
		dir = FashionMNISTDebianDir
	}
	return loadMNISTDir(dir, cfg)
}

// CheckFashionMNISTDir reports, without reading the files, the error
// LoadFashionMNIST(dir) would give for a missing directory or file.
func CheckFashionMNISTDir(dir string) error {
	if dir == "" {
		dir = FashionMNISTDebianDir
	}
	return checkIDXDir(dir, fashionSource)
}

// idxDirSource reads any dataset stored as MNIST's four IDX files: images
// of any one size, labels counted.
var idxDirSource = mnistConfig{
	name:   "idx",
	title:  "IDX dataset",
	absent: "put the training and test images and labels there, named as MNIST's",
	files: [4]mnistFile{
		{name: "train-images-idx3-ubyte"},
		{name: "train-labels-idx1-ubyte"},
		{name: "t10k-images-idx3-ubyte"},
		{name: "t10k-labels-idx1-ubyte"},
	},
}

// LoadIDXDir loads a classification dataset stored like MNIST in dir:
// train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each gzipped
// (.gz) or not. Images are unsigned bytes [N, rows, cols] of any one size
// and become [1, rows, cols] with values byte/255; the classes are
// counted from the labels (largest + 1). Nothing is checked against
// pinned hashes.
func LoadIDXDir(dir string) (train, test *Dataset, err error) {
	return loadMNISTDir(dir, idxDirSource)
}

// CheckIDXDir reports, without reading the files, the error LoadIDXDir
// would give for a missing directory or file.
func CheckIDXDir(dir string) error { return checkIDXDir(dir, idxDirSource) }

func checkIDXDir(dir string, cfg mnistConfig) error {
	paths, err := findMNISTDir(dir, cfg)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := fileio.Check(p); err != nil {
			return fmt.Errorf("load %s: %w", cfg.title, err)
		}
	}
	return nil
}
