package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/distill-dev/distill/eval"
	"github.com/distill-dev/distill/internal/atomicfile"
)

// Markdown renders the report for people: the run's settings, a table
// of the models (teachers first, then each student followed by its
// baseline), how much each student's distillation reduced its baseline's
// errors, and a table of stage timings. The output depends only on r.
func (r *Report) Markdown() string {
	var b strings.Builder
	recipe := r.Recipe
	if recipe == "" {
		recipe = "(unnamed recipe)"
	}
	fmt.Fprintf(&b, "# Distillation report: %s\n\n", inline(recipe))

	ds := inline(r.Dataset.Name)
	if ds == "" {
		ds = "(unnamed)"
	}
	fmt.Fprintf(&b, "- **Dataset:** %s, %s train / %s test examples\n", ds, thousands(int64(r.Dataset.Train)), thousands(int64(r.Dataset.Test)))
	backend := inline(r.Backend)
	if r.Device != "" {
		backend += " on " + inline(r.Device)
	}
	if r.Precision != "" {
		backend += ", " + strings.ToUpper(inline(r.Precision)) + " mixed precision"
	}
	fmt.Fprintf(&b, "- **Backend:** %s\n", backend)
	fmt.Fprintf(&b, "- **Seed:** %d\n", r.Seed)
	if !r.Created.IsZero() {
		fmt.Fprintf(&b, "- **Created:** %s\n", r.Created.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if r.Version != "" {
		fmt.Fprintf(&b, "- **distill version:** %s\n", inline(r.Version))
	}

	b.WriteString("\n## Models\n\n")
	rows, pairs := order(r.Models)
	if len(rows) == 0 {
		b.WriteString("No models were evaluated.\n")
	} else {
		hasTeacher := false
		for _, m := range r.Models {
			hasTeacher = hasTeacher || m.Role == RoleTeacher
		}
		b.WriteString("| Model | Role | Params | Size | Accuracy | Errors | Agreement w/ teacher | ECE |\n")
		b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|\n")
		for _, m := range rows {
			agree := "—"
			if hasTeacher && m.Role != RoleTeacher {
				agree = percent(m.Agreement)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.4f |\n",
				cell(m.Name), cell(role(m)), thousands(int64(m.Params)), size(m.Bytes),
				percent(m.Accuracy), thousands(int64(m.Errors)), agree, m.ECE)
		}
	}

	if len(pairs) > 0 {
		b.WriteString("\n## Distillation vs baseline\n\n")
		for _, p := range pairs {
			b.WriteString("- " + compare(p[0], p[1], r.Dataset.Test) + "\n")
		}
	}

	b.WriteString(r.mdCostSection(rows))

	if len(r.Stages) > 0 {
		var total float64
		for _, s := range r.Stages {
			total += s.Seconds
		}
		// Device memory only where a backend counted it (CUDA).
		device := slices.ContainsFunc(r.Stages, func(s Stage) bool { return s.DeviceMemory != nil })
		b.WriteString("\n## Stages\n\n")
		if device {
			b.WriteString("| Stage | Seconds | Share | Device memory peak |\n")
			b.WriteString("|---|--:|--:|--:|\n")
		} else {
			b.WriteString("| Stage | Seconds | Share |\n")
			b.WriteString("|---|--:|--:|\n")
		}
		for _, s := range r.Stages {
			share := "—"
			if total > 0 {
				share = fmt.Sprintf("%.1f%%", 100*s.Seconds/total)
			}
			fmt.Fprintf(&b, "| %s | %.1f | %s |", cell(s.Name), s.Seconds, share)
			if device {
				b.WriteString(" " + FormatDeviceMemory(s.DeviceMemory) + " |")
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "| **Total** | **%.1f** | |", total)
		if device {
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// WriteMarkdown atomically writes r.Markdown() to path.
func (r *Report) WriteMarkdown(path string) error {
	if err := atomicfile.WriteFile(path, []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// order returns the table's rows: teachers, then each student followed
// by its baseline, then unpaired baselines, then models of other roles,
// each group in report order. A student's baseline is the first unpaired
// baseline with as many parameters (the same architecture), or failing
// that the first unpaired baseline; pairs lists [student, baseline].
func order(models []Model) (rows []Model, pairs [][2]Model) {
	var students, baselines []int
	for i, m := range models {
		switch m.Role {
		case RoleTeacher:
			rows = append(rows, m)
		case RoleStudent:
			students = append(students, i)
		case RoleBaseline:
			baselines = append(baselines, i)
		}
	}
	partner := map[int]int{} // student index -> baseline index
	used := map[int]bool{}
	match := func(ok func(s, b Model) bool) {
		for _, s := range students {
			if _, done := partner[s]; done {
				continue
			}
			for _, bl := range baselines {
				if !used[bl] && ok(models[s], models[bl]) {
					partner[s], used[bl] = bl, true
					break
				}
			}
		}
	}
	match(func(s, b Model) bool { return s.Params == b.Params })
	match(func(s, b Model) bool { return true })
	for _, s := range students {
		rows = append(rows, models[s])
		if bl, ok := partner[s]; ok {
			rows = append(rows, models[bl])
			pairs = append(pairs, [2]Model{models[s], models[bl]})
		}
	}
	for _, bl := range baselines {
		if !used[bl] {
			rows = append(rows, models[bl])
		}
	}
	for _, m := range models {
		switch m.Role {
		case RoleTeacher, RoleStudent, RoleBaseline:
		default:
			rows = append(rows, m)
		}
	}
	return rows, pairs
}

// role describes a model's role, with a student's distillation settings.
func role(m Model) string {
	var opts []string
	if m.Method != "" {
		opts = append(opts, m.Method)
	}
	if m.Temperature != 0 {
		opts = append(opts, "T="+strconv.FormatFloat(m.Temperature, 'g', -1, 64))
	}
	if m.Alpha != 0 {
		opts = append(opts, "α="+strconv.FormatFloat(m.Alpha, 'g', -1, 64))
	}
	if len(opts) == 0 {
		return string(m.Role)
	}
	return string(m.Role) + " (" + strings.Join(opts, ", ") + ")"
}

// compare states how a student fared against its baseline, both scored
// on the n test examples: a difference in errors that a two-proportion
// test does not tell from chance (AccuracyWithinNoise) is called within
// noise, the count kept.
func compare(s, b Model, n int) string {
	head := fmt.Sprintf("**%s** made %s errors", inline(s.Name), thousands(int64(s.Errors)))
	acc := fmt.Sprintf("Accuracy %s vs %s (%+.2f points", percent(s.Accuracy), percent(b.Accuracy), 100*(s.Accuracy-b.Accuracy))
	if n > 0 {
		// Each accuracy's 95% Wilson interval, from the error count.
		interval := func(m Model) string {
			lo, hi := eval.Wilson(n-m.Errors, n)
			return fmt.Sprintf("%.2f–%.2f%%", 100*lo, 100*hi)
		}
		acc += "; 95% intervals " + interval(s) + " and " + interval(b)
	}
	acc += ")."
	base := "**" + inline(b.Name) + "**"
	d := b.Errors - s.Errors
	noise := ""
	if d != 0 && AccuracyWithinNoise(s, n, b, n) {
		noise = ", " + WithinNoise
	}
	switch {
	case d == 0:
		return fmt.Sprintf("%s, as many as its baseline %s. %s", head, base, acc)
	case b.Errors == 0:
		return fmt.Sprintf("%s, %s more than its baseline %s, which made none%s. %s", head, thousands(int64(-d)), base, noise, acc)
	case d > 0:
		return fmt.Sprintf("%s, %s fewer than its baseline %s (%s): distillation cut errors by %.1f%%%s. %s",
			head, thousands(int64(d)), base, thousands(int64(b.Errors)), 100*float64(d)/float64(b.Errors), noise, acc)
	default:
		return fmt.Sprintf("%s, %s more than its baseline %s (%s): distillation added %.1f%% errors%s. %s",
			head, thousands(int64(-d)), base, thousands(int64(b.Errors)), 100*float64(-d)/float64(b.Errors), noise, acc)
	}
}

// thousands formats n with comma separators: 1,199,882.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// size formats a byte count in binary units: 512 B, 1.5 KiB, 4.6 MiB.
func size(n int64) string {
	if n <= 0 {
		return "—"
	}
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

func percent(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

// inline makes s safe to embed in a line of Markdown.
func inline(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell makes s safe to embed in a table cell.
func cell(s string) string {
	return strings.ReplaceAll(inline(s), "|", `\|`)
}
