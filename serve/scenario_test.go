package serve

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/distill-dev/distill/report"
)

// TestMeasureServer runs the server scenario on a model that takes 2 ms
// per batch whatever its size, so batching is what lets it keep up: the
// offered 20,000 requests per second exceed what it can do (at most
// 8 per 2 ms = 4,000/s), and the search must settle on a rate that
// passed, below the lowest that failed.
func TestMeasureServer(t *testing.T) {
	res := measureSlow(t, 150*time.Millisecond, 1)
	// The first rate fails at once; each of the 5 after it takes one
	// trial (a failure) or two (a pass confirmed, or a pass then a failure).
	if len(res.Trials) < 6 || len(res.Trials) > 11 || res.Trials[0].RateRPS != 20000 || res.Trials[0].Passed {
		t.Fatalf("trials %+v: want 6 to 11, the first at 20000/s failing", res.Trials)
	}
	if !(res.RequestsPerSecond > 0 && res.RequestsPerSecond < res.FailedRequestsPerSecond && res.FailedRequestsPerSecond <= 20000) {
		t.Errorf("sustained %v/s, failed at %v/s: want 0 < sustained < failed", res.RequestsPerSecond, res.FailedRequestsPerSecond)
	}
	if res.RequestsPerSecond > 4000*1.1 {
		t.Errorf("sustained %v/s, more than the model's 4,000/s", res.RequestsPerSecond)
	}
	confirmed := false
	for i, tr := range res.Trials {
		if tr.Passed && (tr.P99MS > 50 || tr.Failed > 0 || tr.AchievedRPS < 0.9*tr.RateRPS) {
			t.Errorf("trial %+v passed against its rules", tr)
		}
		// A rate passes only twice in a row: a pass above the reported
		// rate must be followed by a failure at the same rate.
		if tr.Passed && tr.RateRPS > res.RequestsPerSecond && (i+1 == len(res.Trials) || res.Trials[i+1].RateRPS != tr.RateRPS || res.Trials[i+1].Passed) {
			t.Errorf("trial %d %+v passed above the reported rate %v without failing its confirmation", i, tr, res.RequestsPerSecond)
		}
		if i > 0 && tr.Passed && res.Trials[i-1].Passed && tr.RateRPS == res.RequestsPerSecond && res.Trials[i-1].RateRPS == tr.RateRPS {
			confirmed = true
		}
	}
	if !confirmed {
		t.Errorf("the reported rate %v has no two passing trials in a row: %+v", res.RequestsPerSecond, res.Trials)
	}
	if res.LatencyMS.P99 <= 0 || res.LatencyMS.P99 > 50 || res.MaxBatch != 8 || res.MaxWaitMS != 1 || res.LatencyBoundMS != 50 {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(res.Method, "Poisson") || !strings.Contains(res.Method, "loopback") || !strings.Contains(res.Method, "2 trials in a row") {
		t.Errorf("method %q", res.Method)
	}
}

// TestMeasureServerSearches repeats the search: the figure is the
// median search's, and the range holds every rate any search passed or
// failed (searchRange may widen it further).
func TestMeasureServerSearches(t *testing.T) {
	res := measureSlow(t, 100*time.Millisecond, 3)
	if len(res.Searches) != 3 {
		t.Fatalf("%d searches, want 3: %+v", len(res.Searches), res.Searches)
	}
	passed := make([]float64, 0, 3)
	for i, s := range res.Searches {
		if i > 0 && s.RequestsPerSecond < res.Searches[i-1].RequestsPerSecond {
			t.Errorf("searches %+v not in order of passing rate", res.Searches)
		}
		if s.RequestsPerSecond > 0 {
			passed = append(passed, s.RequestsPerSecond)
		}
		if s.RequestsPerSecond > res.RequestsPerSecondHigh || s.FailedRequestsPerSecond > res.RequestsPerSecondHigh {
			t.Errorf("search %+v outside the range's top %v", s, res.RequestsPerSecondHigh)
		}
		if s.RequestsPerSecond > 0 && s.RequestsPerSecond < res.RequestsPerSecondLow {
			t.Errorf("search %+v below the range's bottom %v", s, res.RequestsPerSecondLow)
		}
		// Every trial of the rate a search reports passed: find two
		// passing trials at it.
		n := 0
		for _, tr := range res.Trials {
			if tr.Passed && tr.RateRPS == s.RequestsPerSecond {
				n++
			}
		}
		if s.RequestsPerSecond > 0 && n < 2 {
			t.Errorf("search %+v: its rate passed %d trials, want at least 2", s, n)
		}
	}
	if len(passed) == 0 {
		t.Fatalf("no search passed any rate: %+v", res.Trials)
	}

	if res.RequestsPerSecond != res.Searches[1].RequestsPerSecond || res.FailedRequestsPerSecond != res.Searches[1].FailedRequestsPerSecond {
		t.Errorf("figure %v (failed %v), want the median search %+v", res.RequestsPerSecond, res.FailedRequestsPerSecond, res.Searches[1])
	}
	if !(res.RequestsPerSecondLow > 0 && res.RequestsPerSecondLow <= res.RequestsPerSecond && res.RequestsPerSecond < res.RequestsPerSecondHigh && res.RequestsPerSecondHigh <= 20000) {
		t.Errorf("range %v–%v around %v; searches %+v", res.RequestsPerSecondLow, res.RequestsPerSecondHigh, res.RequestsPerSecond, res.Searches)
	}
	// The later searches bisect a bracket: fewer trials than a search
	// from the top would take.
	if len(res.Trials) > 11+2*(2*4+3) {
		t.Errorf("%d trials for 3 searches", len(res.Trials))
	}
	if !strings.Contains(res.Method, "3 searches") {
		t.Errorf("method %q does not name the searches", res.Method)
	}
}

// measureSlow runs the server scenario on a model that takes 2 ms per
// batch of at most 8, from 20,000 requests per second down, in 5 steps
// a search with a 50 ms bound.
func measureSlow(t *testing.T, trial time.Duration, searches int) report.ServerScenario {
	t.Helper()
	m := &slowModel{Model: tinyProgram(t), delay: 2 * time.Millisecond}
	res, err := MeasureServer(context.Background(), m, ScenarioConfig{
		LatencyBound: 50 * time.Millisecond, MaxRate: 20000, MaxBatch: 8, MaxWait: time.Millisecond,
		Trial: trial, Steps: 5, Searches: searches, Sample: make([]float32, m.InputSize()), Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestMeasureServerErrors(t *testing.T) {
	m := tinyProgram(t)
	sample := make([]float32, m.InputSize())
	for _, cfg := range []ScenarioConfig{
		{MaxRate: 100, Sample: sample},
		{LatencyBound: time.Second, Sample: sample},
		{LatencyBound: time.Second, MaxRate: 100, Sample: sample[:1]},
	} {
		if _, err := MeasureServer(context.Background(), m, cfg); err == nil {
			t.Errorf("MeasureServer(%+v) accepted it", cfg)
		}
	}
}

func TestSearchRange(t *testing.T) {
	s := func(pass, fail float64) report.ServerSearch {
		return report.ServerSearch{RequestsPerSecond: pass, FailedRequestsPerSecond: fail}
	}
	// The 95% prediction interval of a repeat's mean of n searches, by
	// hand: t(0.975, n−1) × sd × √(2/n) around the mean log midpoint.
	interval := func(t975 float64, mids ...float64) (float64, float64) {
		var logs []float64
		for _, m := range mids {
			logs = append(logs, math.Log(m))
		}
		mean, ss := 0.0, 0.0
		for _, l := range logs {
			mean += l / float64(len(logs))
		}
		for _, l := range logs {
			ss += (l - mean) * (l - mean)
		}
		n := float64(len(logs))
		half := t975 * math.Sqrt(ss/(n-1)) * math.Sqrt(2/n)
		return math.Exp(mean - half), math.Exp(mean + half)
	}
	lo3, hi3 := interval(4.302653, 100, 200, 400)
	// A search where every rate passed counts its pass: midpoints
	// √(1000·1100) and 2000, one degree of freedom.
	lo2, hi2 := interval(12.706205, math.Sqrt(1000*1100), 2000)
	for _, c := range []struct {
		name      string
		searches  []report.ServerSearch
		max       float64
		low, high float64
	}{
		{"agreeing searches: their bracket", []report.ServerSearch{s(1000, 1100), s(1000, 1100), s(1000, 1100)}, 1e6, 1000, 1100},
		{"one search: its bracket", []report.ServerSearch{s(1000, 1200)}, 1e6, 1000, 1200},
		// Midpoints 100, 200, 400 (brackets 50–200, 100–400, 200–800).
		{"disagreeing searches: the prediction interval", []report.ServerSearch{s(50, 200), s(100, 400), s(200, 800)}, 1e6, lo3, hi3},
		{"capped at the highest rate", []report.ServerSearch{s(50, 200), s(100, 400), s(200, 800)}, 1000, lo3, 1000},
		{"a search where every rate passed counts its pass", []report.ServerSearch{s(1000, 1100), s(2000, 0)}, 1e6, lo2, hi2},
		{"nothing passed", []report.ServerSearch{s(0, 100), s(0, 100)}, 1e6, 0, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			low, high := searchRange(c.searches, c.max, SearchSpread(c.searches))
			if math.Abs(low-c.low) > 1e-6*c.low || math.Abs(high-c.high) > 1e-6*c.high {
				t.Errorf("range %v–%v, want %v–%v", low, high, c.low, c.high)
			}
			for _, s := range c.searches {
				if s.RequestsPerSecond > 0 && (s.RequestsPerSecond < low || min(s.FailedRequestsPerSecond, c.max) > high) {
					t.Errorf("search %+v outside the range %v–%v", s, low, high)
				}
			}
		})
	}
}

// TestShiftBracket: a later search's bracket moves by at most half its
// last bisection step either way, different draws give different
// brackets (and so different grids of rates), and the top never passes
// the highest rate.
func TestShiftBracket(t *testing.T) {
	const lo, hi, steps = 1000.0, 4000.0, 4
	step := math.Log(hi/lo) / 16 // the last of 4 bisections on the log scale
	seen := map[float64]bool{}
	for _, u := range []float64{0, 0.25, 0.5, 0.75, 0.999} {
		l, h := shiftBracket(lo, hi, steps, u, 1e9)
		if d := math.Log(l / lo); math.Abs(d-(u-0.5)*step) > 1e-12 || math.Abs(d) > step/2 {
			t.Errorf("u=%v: low end moved by %v on the log scale, want %v", u, d, (u-0.5)*step)
		}
		if math.Abs(math.Log(h/l)-math.Log(hi/lo)) > 1e-12 {
			t.Errorf("u=%v: bracket %v–%v changed its width", u, l, h)
		}
		if seen[l] {
			t.Errorf("u=%v: low end %v repeats another draw's", u, l)
		}
		seen[l] = true
	}
	if l, h := shiftBracket(lo, hi, steps, 0.99, hi); h != hi || !(l > lo) {
		t.Errorf("capped: %v–%v, want the top kept at %v", l, h, hi)
	}
}
