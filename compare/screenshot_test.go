package compare

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHTMLCharts checks that the page holds both charts as inline SVG
// with their data drawn, and nothing fetched from elsewhere.
func TestHTMLCharts(t *testing.T) {
	c, err := New(load(t, fixed...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.HTML()
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, id := range []string{"cost-chart", "latency-chart"} {
		i := strings.Index(page, `<figure id="`+id+`">`)
		if i < 0 {
			t.Fatalf("no %s figure", id)
		}
		fig := page[i : i+strings.Index(page[i:], "</figure>")]
		if strings.Count(fig, "<svg") != 1 || strings.Count(fig, "</svg>") != 1 {
			t.Errorf("%s: want one inline <svg> element", id)
		}
		if n := strings.Count(fig, "<path"); n < 20 {
			t.Errorf("%s: only %d paths drawn", id, n)
		}
	}
	cost := page[strings.Index(page, `id="cost-chart"`):strings.Index(page, `id="latency-chart"`)]
	for _, want := range []string{">Accuracy vs serving cost<", ">Pareto frontier<", ">run mnist-cpu<", ">run mnist-gpu<", ">mnist-cpu/tiny<", ">mnist-gpu/teacher<", ">$0.001<"} {
		if !strings.Contains(cost, want) {
			t.Errorf("cost chart lacks %q", want)
		}
	}
	if strings.Contains(cost, "run synthetic-old") {
		t.Error("the cost chart's legend lists a run without costs")
	}
	latency := page[strings.Index(page, `id="latency-chart"`):]
	for _, want := range []string{">Batch-1 latency per model<", ">p50<", ">p95<", ">p99<", ">mnist-gpu/small<"} {
		if !strings.Contains(latency, want) {
			t.Errorf("latency chart lacks %q", want)
		}
	}
	// Self-contained: no URL is loaded (the only http(s) URLs are text:
	// the price sources, and the SVG namespaces).
	for _, m := range regexp.MustCompile(`(?i)(src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(page, -1) {
		t.Errorf("the page loads %s", m[2])
	}
	if regexp.MustCompile(`(?i)<(script|link|img|iframe)\b|@import|url\(`).MatchString(page) {
		t.Error("the page refers to an outside resource")
	}
}

// chromium returns the path of a headless-capable Chromium, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestHTMLScreenshot renders the page in headless Chromium and checks the
// screenshot shows the charts: the run colours of the cost chart's
// markers and the percentile colours of the latency chart. Run with
// -artifacts to keep the screenshot (its path is logged).
func TestHTMLScreenshot(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("chromium not found (apt-get install -y chromium)")
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	c, err := New(load(t, fixed...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.ArtifactDir()
	_, page, err := Write(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "compare.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	abs, _ := filepath.Abs(page)
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--hide-scrollbars", "--user-data-dir="+t.TempDir(),
		"--screenshot="+shot, "--window-size=1400,1800", "file://"+abs)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	t.Logf("screenshot: %s", shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, out)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1400 || b.Dy() != 1800 {
		t.Errorf("screenshot is %v, want 1400×1800", b)
	}
	// Count pixels of the charts' colours: the two runs' marker colours
	// (cost chart) and the p50, p95 and p99 colours (latency chart).
	for _, want := range []struct {
		name string
		c    color.RGBA
	}{
		{"run mnist-cpu / p50 (blue)", palette[0]},
		{"run mnist-gpu / p99 (vermillion)", palette[1]},
		{"p95 (orange)", palette[4]},
	} {
		if n := countColor(img, want.c); n < 50 {
			t.Errorf("%s: %d pixels of %v in the screenshot; are the charts drawn?", want.name, n, want.c)
		}
	}
}

// countColor counts the pixels within a small distance of c.
func countColor(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near8(r>>8, c.R) && near8(g>>8, c.G) && near8(bl>>8, c.B) {
				n++
			}
		}
	}
	return n
}

func near8(v uint32, w uint8) bool { d := int(v) - int(w); return d > -12 && d < 12 }
