package compare

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
)

//go:embed page.html.tmpl
var pageTemplate string

var page = template.Must(template.New("page").Parse(pageTemplate))

// htmlTable is a table as the template reads it.
type htmlTable struct {
	Head  []string
	Right []bool
	Rows  [][]string
	Mark  []bool
}

func (t table) html() htmlTable { return htmlTable{t.head, t.right, t.rows, t.mark} }

// HTML renders the comparison as one self-contained HTML page: the
// Markdown's tables (models, cheapest deployment, runs), a chart of accuracy against serving cost with the
// Pareto frontier, and a chart of each model's latency percentiles. The
// charts are inline SVG drawn with gonum.org/v1/plot; the page loads
// nothing from the network (no scripts, fonts or images). It depends
// only on c.
func (c *Comparison) HTML() ([]byte, error) {
	costSVG, latencySVG, err := c.charts()
	if err != nil {
		return nil, err
	}
	data := struct {
		Title                   string
		Intro, Notes            []string
		Runs, Models            htmlTable
		Deployment              *htmlTable
		DeploymentIntro         string
		CostChart, LatencyChart template.HTML
	}{
		Title: c.Title, Intro: c.intro(), Notes: c.notes(),
		Runs: c.runsTable().html(), Models: c.modelsTable().html(),
		// The SVG is drawn by gonum/plot, which escapes all text in it.
		CostChart: template.HTML(costSVG), LatencyChart: template.HTML(latencySVG),
	}
	if t, ok := c.deploymentTable(); ok {
		h := t.html()
		data.Deployment, data.DeploymentIntro = &h, deploymentIntro
	}
	var b bytes.Buffer
	if err := page.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("compare: render HTML: %w", err)
	}
	return b.Bytes(), nil
}
