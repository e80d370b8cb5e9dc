package pipeline

import (
	"errors"
	"fmt"
	"os"

	"github.com/distill-dev/distill/recipe"
)

// Check runs the checks that Run makes before any work, except those of
// the run directory: the recipe, with opts' overrides applied, must
// validate, every file it reads must exist and be readable
// (recipe.CheckFiles), and every size must fit in memory
// (recipe.CheckResources, against opts.Memory or else the machine's), and
// the main teacher's ONNX or state_dict file must hold a teacher for the
// data (checkTeacherFiles; an ONNX teacher also needs ONNX Runtime). A
// problem found is returned as a *recipe.Error listing them all.
// distill validate runs it, so that what it accepts does not fail at
// the start of a run.
func Check(r *recipe.Recipe, opts Options) error {
	rc := withOverrides(r, opts)
	if err := rc.Validate(); err != nil {
		return err
	}
	return checkInputs(rc, opts)
}

// withOverrides returns a copy of r with opts' overrides applied.
func withOverrides(r *recipe.Recipe, opts Options) *recipe.Recipe {
	rc := *r
	if opts.Backend != "" {
		rc.Backend = opts.Backend
	}
	if opts.Device != "" {
		rc.Device = opts.Device
	}
	if opts.Precision != "" {
		rc.Precision = opts.Precision
	}
	if opts.DataDir != "" {
		rc.Data.Dir = opts.DataDir
	}
	return &rc
}

// checkInputs checks a valid recipe's input files and sizes.
func checkInputs(r *recipe.Recipe, opts Options) error {
	mem := opts.Memory
	if mem.Bytes <= 0 {
		mem = recipe.MachineMemory()
	}
	var problems []recipe.Problem
	for _, err := range []error{r.CheckFiles(), r.CheckResources(mem)} {
		var re *recipe.Error
		if errors.As(err, &re) {
			problems = append(problems, re.Problems...)
		} else if err != nil {
			return err
		}
	}
	skip := map[string]bool{}
	for _, p := range problems {
		skip[p.Key] = true
	}
	problems = append(problems, checkTeacherFiles(r, skip)...)
	if len(problems) > 0 {
		return &recipe.Error{Problems: problems}
	}
	return nil
}

// checkOutDir makes sure the run directory exists and takes files (a
// file is created, synced and removed), so that a read-only --out fails
// before the teacher trains rather than at its first save.
func checkOutDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("distill: cannot create the run directory %s: %w; choose another with --out or output.dir", dir, err)
	}
	f, err := os.CreateTemp(dir, ".distill-write-check-*")
	if err == nil {
		_, err = f.Write([]byte("distill\n"))
		err = errors.Join(err, f.Sync(), f.Close(), os.Remove(f.Name()))
	}
	if err != nil {
		return fmt.Errorf("distill: the run directory %s is not writable: %w; choose another with --out or output.dir", dir, err)
	}
	return nil
}
