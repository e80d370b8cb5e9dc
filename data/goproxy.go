package data

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/distill-dev/distill/internal/fileio"
)

// errModuleNotFound marks a proxy's "not found" answer (HTTP 404 or 410,
// or a missing file under a file:// proxy), after which a comma-separated
// GOPROXY list falls through to its next entry.
var errModuleNotFound = errors.New("module not found")

// defaultGOPROXY is used when neither MNISTOptions.GOPROXY nor the
// environment names a proxy.
const defaultGOPROXY = "https://proxy.golang.org"

// proxyEntry is one element of a GOPROXY list.
type proxyEntry struct {
	// url is a proxy base URL, "direct" or "off".
	url string
	// anyError is true if the entry is followed by '|': the next entry is
	// tried after any failure, not only after "not found".
	anyError bool
}

// parseGOPROXY splits a GOPROXY list the way the go command does: entries
// separated by ',' or '|', empty entries ignored, and an entry that looks
// like a host name without a scheme given "https://".
func parseGOPROXY(list string) ([]proxyEntry, error) {
	var out []proxyEntry
	for list != "" {
		entry, anyError := list, false
		if i := strings.IndexAny(list, ",|"); i >= 0 {
			entry, anyError, list = list[:i], list[i] == '|', list[i+1:]
		} else {
			list = ""
		}
		entry = strings.TrimSpace(entry)
		switch {
		case entry == "":
			continue
		case entry == "off" || entry == "direct":
		default:
			if strings.ContainsAny(entry, ".:/") && !strings.Contains(entry, ":/") &&
				!filepath.IsAbs(entry) && !path.IsAbs(entry) {
				entry = "https://" + entry
			}
			u, err := url.Parse(entry)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
				return nil, fmt.Errorf("GOPROXY entry %q is not an http, https or file URL, \"direct\" or \"off\"; fix GOPROXY", entry)
			}
		}
		out = append(out, proxyEntry{url: entry, anyError: anyError})
	}
	return out, nil
}

// mnistZip returns the MNIST module's zip and where it came from: the Go
// module download cache if it holds one, else the first proxy of the
// GOPROXY list that serves it. looked lists the directories already
// searched, for the error message.
func mnistZip(ctx context.Context, opts MNISTOptions, cfg mnistConfig, modCache string, looked []string) ([]byte, string, error) {
	rel := escapeModulePath(cfg.module) + "/@v/" + cfg.version + ".zip"
	if modCache != "" {
		p := filepath.Join(modCache, "cache", "download", filepath.FromSlash(rel))
		f, err := fileio.Open(p)
		if err == nil {
			defer f.Close()
			b, err := readBounded(f, -1, cfg.maxZipBytes, nil)
			if err != nil {
				return nil, "", fmt.Errorf("load MNIST: read %s: %w", p, err)
			}
			return b, p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("load MNIST: %w", err)
		}
	}

	list := opts.GOPROXY
	if list == "" {
		list = os.Getenv("GOPROXY")
	}
	if list == "" {
		list = defaultGOPROXY
	}
	entries, err := parseGOPROXY(list)
	if err != nil {
		return nil, "", fmt.Errorf("load MNIST: %w", err)
	}
	notFound := fmt.Sprintf("MNIST not found locally (looked in %s)", strings.Join(looked, " and "))
	if len(looked) == 0 {
		notFound = "MNIST not found locally (no cache directory could be determined)"
	}
	remedy := fmt.Sprintf("pass --data-dir with the four IDX files (%s), or allow downloads by setting GOPROXY to a reachable Go module proxy such as %s",
		mnistFileNames(cfg), defaultGOPROXY)
	client := opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}

	var tried []string
	for _, e := range entries {
		switch e.url {
		case "off":
			return nil, "", fmt.Errorf("%s and downloads are disabled (GOPROXY=%q)%s; %s",
				notFound, list, triedSuffix(tried), remedy)
		case "direct":
			tried = append(tried, `"direct" skipped: MNIST is fetched only through the module proxy protocol`)
			continue
		}
		b, err := fetchModuleZip(ctx, client, e.url, rel, cfg.maxZipBytes, opts.Progress)
		if err == nil {
			return b, e.url, nil
		}
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("load MNIST: download: %w", ctx.Err())
		}
		tried = append(tried, err.Error())
		if !e.anyError && !errors.Is(err, errModuleNotFound) {
			break
		}
	}
	if len(tried) == 0 {
		tried = append(tried, "the list names no proxy")
	}
	return nil, "", fmt.Errorf("%s and the download failed (GOPROXY=%q)%s; %s",
		notFound, list, triedSuffix(tried), remedy)
}

// triedSuffix formats the download attempts for an error message.
func triedSuffix(tried []string) string {
	if len(tried) == 0 {
		return ""
	}
	return ": " + strings.Join(tried, "; ")
}

// fetchModuleZip gets rel (module/@v/version.zip) from the proxy at base,
// reading at most limit bytes.
func fetchModuleZip(ctx context.Context, client *http.Client, base, rel string, limit int64, progress func(done, total int64)) ([]byte, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", base, err)
	}
	if u.Scheme == "file" {
		p := filepath.Join(filepath.FromSlash(u.Path), filepath.FromSlash(rel))
		f, err := fileio.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, errModuleNotFound)
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		total := int64(-1)
		if st, err := f.Stat(); err == nil {
			total = st.Size()
		}
		b, err := readBounded(f, total, limit, progress)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		return b, nil
	}

	full := strings.TrimSuffix(base, "/") + "/" + rel
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, full, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", full, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", full, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		return nil, fmt.Errorf("GET %s: %w (%s)", full, errModuleNotFound, resp.Status)
	default:
		return nil, fmt.Errorf("GET %s: %s", full, resp.Status)
	}
	b, err := readBounded(resp.Body, resp.ContentLength, limit, progress)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", full, err)
	}
	return b, nil
}

// readBounded reads r to its end, refusing more than limit bytes, and
// reports progress against total (-1 if unknown).
func readBounded(r io.Reader, total, limit int64, progress func(done, total int64)) ([]byte, error) {
	if total > limit {
		return nil, fmt.Errorf("the source announces %d bytes, more than the %d bytes expected of the MNIST module zip", total, limit)
	}
	var buf bytes.Buffer
	if total > 0 {
		buf.Grow(int(total) + bytes.MinRead)
	}
	if progress != nil {
		progress(0, total)
		r = &progressReader{r: r, total: total, fn: progress}
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("more than the %d bytes expected of the MNIST module zip", limit)
	}
	return buf.Bytes(), nil
}

// progressReader reports the bytes read so far after every Read.
type progressReader struct {
	r           io.Reader
	done, total int64
	fn          func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.fn(p.done, p.total)
	}
	return n, err
}

// extractPinned takes the files listed in want out of the module zip and
// verifies each against its pinned size and hash.
func extractPinned(zipData []byte, where string, cfg mnistConfig, want []int) ([4][]byte, error) {
	var out [4][]byte
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		return out, fmt.Errorf("load MNIST: the module zip from %s is not a valid zip file (%w); use another GOPROXY, or pass --data-dir with the four IDX files", where, err)
	}
	// Module zips name their files <module>@<version>/<path>, with the
	// module path as written (not case-escaped).
	prefix := cfg.module + "@" + cfg.version + "/data/"
	byName := make(map[string]*zip.File)
	for _, f := range zr.File {
		if name, ok := strings.CutPrefix(f.Name, prefix); ok {
			byName[name] = f
		}
	}
	for _, i := range want {
		pf := cfg.files[i]
		zf := byName[pf.name+".gz"]
		if zf == nil {
			return out, fmt.Errorf("load MNIST: the module zip from %s has no %s%s.gz; it is not the expected module, so use another GOPROXY or pass --data-dir with the four IDX files",
				where, prefix, pf.name)
		}
		if zf.UncompressedSize64 > uint64(pf.size) {
			return out, fmt.Errorf("load MNIST: %w: %s.gz in the module zip from %s has %d bytes, more than the pinned %d; use another GOPROXY or pass --data-dir with the four IDX files",
				ErrChecksum, pf.name, where, zf.UncompressedSize64, pf.size)
		}
		rc, err := zf.Open()
		if err != nil {
			return out, fmt.Errorf("load MNIST: %s.gz in the module zip from %s: %w", pf.name, where, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, pf.size+1))
		rc.Close()
		if err != nil {
			return out, fmt.Errorf("load MNIST: %s.gz in the module zip from %s: %w", pf.name, where, err)
		}
		if err := verifyPinned(b, pf, where); err != nil {
			return out, fmt.Errorf("%w; the source serves different data: use another GOPROXY (or run 'go clean -modcache' if it is the local module cache), or pass --data-dir with the four IDX files", err)
		}
		out[i] = b
	}
	return out, nil
}
