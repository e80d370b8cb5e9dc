package compare

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/report"
)

// Chart size, in points (1/72 inch).
const (
	chartWidth  = 7.5 * vg.Inch
	chartHeight = 5 * vg.Inch
)

// palette colours the runs (Okabe–Ito, readable by colour-blind people).
var palette = []color.RGBA{
	{0, 114, 178, 255},   // blue
	{213, 94, 0, 255},    // vermillion
	{0, 158, 115, 255},   // bluish green
	{204, 121, 167, 255}, // reddish purple
	{230, 159, 0, 255},   // orange
	{86, 180, 233, 255},  // sky blue
	{240, 228, 66, 255},  // yellow
	{0, 0, 0, 255},       // black
}

func runColor(i int) color.Color { return palette[i%len(palette)] }

// roles lists the roles in the order the cost chart's legend gives them.
var roles = report.Roles

// roleGlyph is the marker shape of each role: filled for float models,
// hollow for their INT8 versions, a cross for roles not known here.
func roleGlyph(role report.Role) draw.GlyphDrawer {
	switch role {
	case report.RoleTeacher:
		return draw.BoxGlyph{}
	case report.RoleStudent:
		return draw.CircleGlyph{}
	case report.RoleBaseline:
		return draw.PyramidGlyph{}
	case report.RoleStudentInt8:
		return draw.RingGlyph{}
	case report.RoleTeacherInt8:
		return draw.SquareGlyph{}
	}
	return draw.CrossGlyph{}
}

var gray = color.RGBA{110, 110, 110, 255}

// newPlot returns a plot with sans-serif text throughout.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	for _, s := range []*draw.TextStyle{&p.Title.TextStyle, &p.X.Label.TextStyle, &p.Y.Label.TextStyle, &p.X.Tick.Label, &p.Y.Tick.Label, &p.Legend.TextStyle} {
		s.Font.Variant = "Sans"
	}
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.Legend.TextStyle.Font.Size = vg.Points(11)
	p.Legend.Padding = vg.Points(4)
	p.Title.Padding = vg.Points(8)
	p.Add(plotter.NewGrid())
	return p
}

// logTicks labels a log axis at 1, 2 and 5 times powers of ten, with
// minor ticks between, so that a range within one decade still gets
// labels.
type logTicks struct{ unit string }

func (t logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		d := math.Pow(10, e)
		for m := 1; m <= 9; m++ {
			v := float64(m) * d
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			label := ""
			if m == 1 || m == 2 || m == 5 {
				label = t.format(v)
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: label})
		}
	}
	return ticks
}

func (t logTicks) format(v float64) string {
	s := strconv.FormatFloat(v, 'g', 3, 64)
	if strings.ContainsAny(s, "e") {
		s = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return t.unit + s
}

// padLog widens [lo, hi] by a factor on both sides (for a log axis).
func padLog(lo, hi, f float64) (float64, float64) {
	if lo == hi {
		return lo / (f * 2), hi * (f * 2)
	}
	return lo / f, hi * f
}

// svg renders p as an SVG element for inline use in HTML.
func svg(p *plot.Plot) (string, error) {
	wt, err := p.WriterTo(chartWidth, chartHeight, "svg")
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return "", err
	}
	s := b.String()
	// Drop the XML declaration and comment, which belong to a file, and
	// give the fonts fallbacks: Liberation Sans has Arial's metrics.
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	s = strings.ReplaceAll(s, "font-family:Liberation Sans;", "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")
	return s, nil
}

// costChart plots accuracy against on-demand cost per million requests,
// one colour per run and one marker per role, with the Pareto frontier
// as a dashed line. It returns "" when no model has a cost.
func (c *Comparison) costChart() (string, error) {
	runIndex := map[string]int{}
	for i, r := range c.Runs {
		runIndex[r.Name] = i
	}
	var front plotter.XYs
	var lo, hi float64
	n := 0
	p := newPlot("Accuracy vs serving cost", "$ per 1M requests, on-demand (log scale)", "Accuracy (%)")
	var labels plotter.XYLabels
	var bars errorBars
	for _, r := range c.Rows {
		x := r.USDPerMillion()
		if x <= 0 {
			continue
		}
		if n == 0 || x < lo {
			lo = x
		}
		if n == 0 || x > hi {
			hi = x
		}
		n++
		xy := plotter.XY{X: x, Y: 100 * r.Model.Accuracy}
		s, err := plotter.NewScatter(plotter.XYs{xy})
		if err != nil {
			return "", err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: runColor(runIndex[r.Run]), Radius: vg.Points(5), Shape: roleGlyph(r.Model.Role)}
		p.Add(s)
		bars.add(xy, r, c.Runs[runIndex[r.Run]].Report.Dataset.Test)
		labels.XYs = append(labels.XYs, xy)
		label := r.Model.Name
		if len(c.Runs) > 1 { // which run a point is from, beside its colour
			label = r.Run + "/" + label
		}
		labels.Labels = append(labels.Labels, label)
		if r.Pareto {
			front = append(front, xy)
		}
	}
	if n == 0 {
		return "", nil
	}
	// The noise of each point: its cost range (the slowest and fastest
	// measuring window) and the 95% Wilson interval of its accuracy.
	xb, err := plotter.NewXErrorBars(bars)
	if err != nil {
		return "", err
	}
	yb, err := plotter.NewYErrorBars(bars)
	if err != nil {
		return "", err
	}
	xb.LineStyle.Color, yb.LineStyle.Color = gray, gray
	p.Add(xb, yb)
	sort.Slice(front, func(i, j int) bool { return front[i].X < front[j].X })
	if len(front) > 1 {
		l, err := plotter.NewLine(front)
		if err != nil {
			return "", err
		}
		l.LineStyle = draw.LineStyle{Color: gray, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(6), vg.Points(3)}}
		p.Add(l)
		p.Legend.Add("Pareto frontier", l)
	}
	for _, xy := range front { // ring the frontier's points
		s, err := plotter.NewScatter(plotter.XYs{xy})
		if err != nil {
			return "", err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: gray, Radius: vg.Points(9), Shape: draw.RingGlyph{}}
		p.Add(s)
	}
	lab, err := plotter.NewLabels(labels)
	if err != nil {
		return "", err
	}
	lab.Offset = vg.Point{X: vg.Points(8), Y: vg.Points(4)}
	for i := range lab.TextStyle {
		lab.TextStyle[i].Font.Variant = "Sans"
		lab.TextStyle[i].Font.Size = vg.Points(9)
	}
	p.Add(lab)

	// Legend: runs by colour, roles by shape.
	for i, r := range c.Runs {
		if !hasCost(r.Report) {
			continue
		}
		s, _ := plotter.NewScatter(plotter.XYs{{}})
		s.GlyphStyle = draw.GlyphStyle{Color: runColor(i), Radius: vg.Points(5), Shape: draw.CircleGlyph{}}
		p.Legend.Add("run "+r.Name, s)
	}
	shown := map[report.Role]bool{}
	other := false
	for _, r := range c.Rows {
		if r.USDPerMillion() > 0 {
			shown[r.Model.Role] = true
			other = other || !slices.Contains(roles, r.Model.Role)
		}
	}
	legendRoles := slices.DeleteFunc(slices.Clone(roles), func(role report.Role) bool { return !shown[role] })
	if other {
		legendRoles = append(legendRoles, "other role")
	}
	for _, role := range legendRoles {
		s, _ := plotter.NewScatter(plotter.XYs{{}})
		s.GlyphStyle = draw.GlyphStyle{Color: gray, Radius: vg.Points(5), Shape: roleGlyph(role)}
		p.Legend.Add(string(role), s)
	}
	p.Legend.Left, p.Legend.Top = false, false

	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{unit: "$"}
	p.X.Min, p.X.Max = padLog(lo, hi, 1.6)
	p.Y.Min, p.Y.Max = p.Y.Min-1, p.Y.Max+1
	return svg(p)
}

func hasCost(r *report.Report) bool {
	for _, m := range r.Models {
		if m.Cost != nil && m.Cost.USDPerMillion.OnDemand > 0 {
			return true
		}
	}
	return false
}

// latencyChart plots each measured model's batch-1 latency p50, p95 and
// p99 on a log scale, a range line from p50 to p99. It returns "" when
// no model was measured.
func (c *Comparison) latencyChart() (string, error) {
	var names []string
	var p50, p95, p99 plotter.XYs
	var ranges []plotter.XYs
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range c.Rows {
		s := r.Model.Serving
		if s == nil || !(s.LatencyMS.P50 > 0) {
			continue
		}
		x := float64(len(names))
		label := r.Model.Name
		if len(c.Runs) > 1 {
			label = r.Run + "/" + r.Model.Name
		}
		names = append(names, label)
		l := s.LatencyMS
		p50 = append(p50, plotter.XY{X: x, Y: l.P50})
		p95 = append(p95, plotter.XY{X: x, Y: max(l.P95, l.P50)})
		p99 = append(p99, plotter.XY{X: x, Y: max(l.P99, l.P95, l.P50)})
		ranges = append(ranges, plotter.XYs{{X: x, Y: l.P50}, {X: x, Y: max(l.P99, l.P50)}})
		lo, hi = min(lo, l.P50), max(hi, l.P99, l.P50)
	}
	if len(names) == 0 {
		return "", nil
	}
	p := newPlot("Batch-1 latency per model", "", "Latency (ms, log scale)")
	for _, xy := range ranges {
		l, err := plotter.NewLine(xy)
		if err != nil {
			return "", err
		}
		l.LineStyle = draw.LineStyle{Color: color.RGBA{170, 170, 170, 255}, Width: vg.Points(3)}
		p.Add(l)
	}
	for _, s := range []struct {
		name  string
		xy    plotter.XYs
		color color.Color
		glyph draw.GlyphDrawer
	}{
		{"p50", p50, palette[0], draw.CircleGlyph{}},
		{"p95", p95, palette[4], draw.PyramidGlyph{}},
		{"p99", p99, palette[1], draw.BoxGlyph{}},
	} {
		sc, err := plotter.NewScatter(s.xy)
		if err != nil {
			return "", err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: s.color, Radius: vg.Points(5), Shape: s.glyph}
		p.Add(sc)
		p.Legend.Add(s.name, sc)
	}
	p.Legend.Top, p.Legend.Left = true, false
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.X.Tick.Label.Rotation = math.Pi / 8
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	p.Y.Min, p.Y.Max = padLog(lo, hi, 1.5)
	return svg(p)
}

// charts renders both charts, named for error messages.
func (c *Comparison) charts() (cost, latency string, err error) {
	if cost, err = c.costChart(); err != nil {
		return "", "", fmt.Errorf("compare: cost chart: %w", err)
	}
	if latency, err = c.latencyChart(); err != nil {
		return "", "", fmt.Errorf("compare: latency chart: %w", err)
	}
	return cost, latency, nil
}

// errorBars holds each plotted point with its cost range and accuracy
// interval, for plotter's X and Y error bars.
type errorBars struct {
	xy       plotter.XYs
	xlo, xhi []float64 // distances below and above X
	ylo, yhi []float64 // distances below and above Y
}

// add records point xy of row r, whose run tested on tests examples.
func (b *errorBars) add(xy plotter.XY, r Row, tests int) {
	lo, hi := r.Model.Cost.Range()
	alo, ahi := xy.Y, xy.Y
	if tests > 0 {
		l, h := eval.Wilson(int(math.Round(r.Model.Accuracy*float64(tests))), tests)
		alo, ahi = 100*l, 100*h
	}
	b.xy = append(b.xy, xy)
	b.xlo, b.xhi = append(b.xlo, xy.X-lo), append(b.xhi, hi-xy.X)
	b.ylo, b.yhi = append(b.ylo, xy.Y-alo), append(b.yhi, ahi-xy.Y)
}

func (b errorBars) Len() int                        { return len(b.xy) }
func (b errorBars) XY(i int) (float64, float64)     { return b.xy[i].X, b.xy[i].Y }
func (b errorBars) XError(i int) (float64, float64) { return b.xlo[i], b.xhi[i] }
func (b errorBars) YError(i int) (float64, float64) { return b.ylo[i], b.yhi[i] }
