package cost_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/distill-dev/distill/cost"
	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/report"
)

func ExamplePerMillion() {
	// A GPU at $3.20 an hour answering 2,000 requests a second.
	fmt.Printf("$%.4f per million requests\n", cost.PerMillion(3.20, 2000))
	// Output: $0.4444 per million requests
}

func ExampleBreakEven() {
	// The teacher costs $0.25 per million requests, the student $0.025;
	// distilling the student took 1,000 s at $0.18 an hour.
	training := cost.TrainingUSD(1000, 0.18)
	n, ok := cost.BreakEven(training, 0.25, 0.025)
	fmt.Printf("training $%.2f, pays off after %.0f requests (%v)\n", training, n, ok)
	// Output: training $0.05, pays off after 222222 requests (true)
}

func ExampleMeasure() {
	spec, err := model.MLP(model.MLPConfig{Name: "mlp", Input: []int{64}, Hidden: []int{32}, Classes: 10})
	if err != nil {
		log.Fatal(err)
	}
	w, err := spec.Init(1)
	if err != nil {
		log.Fatal(err)
	}
	prog, err := infer.Compile(spec, w)
	if err != nil {
		log.Fatal(err)
	}
	// Short durations for the example; the defaults take ~7 s.
	s, err := cost.Measure(context.Background(), prog, 64, cost.MeasureOptions{
		Batches: []int{1, 32}, Duration: 30 * time.Millisecond, Warmup: 5 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range s.Throughput {
		fmt.Printf("batch %d: measured %v\n", p.Batch, p.RequestsPerSecond > 0)
	}
	fmt.Println("p50 <= p99:", s.LatencyMS.P50 <= s.LatencyMS.P99)
	// Output:
	// batch 1: measured true
	// batch 32: measured true
	// p50 <= p99: true
}

func ExampleApply() {
	point := func(batch int, rps, p99 float64) report.Throughput {
		return report.Throughput{Batch: batch, RequestsPerSecond: rps, BatchLatencyMS: report.Percentiles{P99: p99}}
	}
	r := &report.Report{
		Device: "cpu",
		Models: []report.Model{
			{Name: "teacher", Role: report.RoleTeacher, Serving: &report.Serving{Throughput: []report.Throughput{point(1, 100, 5), point(8, 200, 50)}}},
			{Name: "small", Role: report.RoleStudent, Serving: &report.Serving{Throughput: []report.Throughput{point(1, 1000, 1), point(8, 2000, 5)}}},
		},
		Stages: []report.Stage{{Name: "teacher", Seconds: 7200}, {Name: "student:small", Seconds: 1000}},
	}
	prices, err := cost.ParsePrices("example", []byte("currency: USD\nmachines:\n  box:\n    on_demand: 0.18\n"))
	if err != nil {
		log.Fatal(err)
	}
	if err := cost.Apply(r, cost.Options{Prices: prices, Machine: "box", LatencyTarget: 100 * time.Millisecond}); err != nil {
		log.Fatal(err)
	}
	for _, m := range r.Models {
		c := m.Cost
		fmt.Printf("%s: batch %d, $%.3f per 1M requests", m.Name, c.Batch, c.USDPerMillion.OnDemand)
		if c.SavingsPercent != nil {
			fmt.Printf(", %.0f%% cheaper, pays off after %.0f requests", *c.SavingsPercent, *c.BreakEvenRequests)
		}
		fmt.Println()
	}
	fmt.Printf("run: %.0f s = $%.2f\n", r.TrainingCost.Seconds, r.TrainingCost.USD.OnDemand)
	// Output:
	// teacher: batch 8, $0.250 per 1M requests
	// small: batch 8, $0.025 per 1M requests, 90% cheaper, pays off after 222222 requests
	// run: 8200 s = $0.41
}
