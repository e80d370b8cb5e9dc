// Command repeat checks that a report's serving noise is honest: it runs a
// recipe once (or reuses its run directory), then measures every model's
// serving cost again N times (pipeline.Options.Remeasure; training is not
// repeated) and prints, per model, each measurement's $/1M with its noise
// range, whether each range holds every other measurement's figure, and
// whether the savings verdicts ("within noise" or not) agree across the
// measurements.
//
//	go run ./bench/repeat -recipe recipes/mnist-quick.yaml -n 3
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/distill-dev/distill/pipeline"
	"github.com/distill-dev/distill/recipe"
	"github.com/distill-dev/distill/report"
)

func main() {
	path := flag.String("recipe", "recipes/mnist-quick.yaml", "recipe to run")
	out := flag.String("out", "", "run directory (default the recipe's)")
	n := flag.Int("n", 3, "serving measurements")
	flag.Parse()
	if *n < 2 {
		log.Fatal("repeat: -n must be at least 2")
	}
	r, err := recipe.Load(*path)
	if err != nil {
		log.Fatal(err)
	}
	var reps []*report.Report
	for i := range *n {
		rep, err := pipeline.Run(context.Background(), r, pipeline.Options{OutDir: *out, Remeasure: i > 0})
		if err != nil {
			log.Fatal(err)
		}
		reps = append(reps, rep)
	}
	ok := summarize(os.Stdout, reps)
	if !ok {
		os.Exit(1)
	}
}

// summarize prints the table and reports whether every range held every
// other measurement's figure and every verdict agreed.
func summarize(w *os.File, reps []*report.Report) bool {
	fmt.Fprintf(w, "| model | %s| ranges hold the others | verdicts agree |\n|---|%s--|--|\n",
		strings.Repeat("$/1M (range) | ", len(reps)), strings.Repeat("--:|", len(reps)))
	allOK := true
	for mi, m := range reps[0].Models {
		if m.Cost == nil {
			continue
		}
		var cells []string
		holds, agree := true, true
		verdict := func(rep *report.Report) string {
			c := rep.Models[mi].Cost
			if c == nil || c.SavingsPercent == nil {
				return "-"
			}
			ref := rep.Models[0].Cost
			for _, o := range rep.Models {
				if o.Name == c.Reference {
					ref = o.Cost
				}
			}
			return fmt.Sprint(report.CostWithinNoise(c, ref))
		}
		first := verdict(reps[0])
		for _, rep := range reps {
			c := rep.Models[mi].Cost
			lo, hi := c.Range()
			cells = append(cells, fmt.Sprintf("%s (%s–%s)", report.FormatUSD(c.USDPerMillion.OnDemand), report.FormatUSD(lo), report.FormatUSD(hi)))
			for _, other := range reps {
				v := other.Models[mi].Cost.USDPerMillion.OnDemand
				if v < lo || v > hi {
					holds = false
				}
			}
			if verdict(rep) != first {
				agree = false
			}
		}
		allOK = allOK && holds && agree
		fmt.Fprintf(w, "| %s | %s | %v | %v |\n", m.Name, strings.Join(cells, " | "), holds, agree)
	}
	return allOK
}
