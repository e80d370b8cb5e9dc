package augment_test

import (
	"fmt"
	"slices"

	"github.com/distill-dev/distill/augment"
)

func ExamplePipeline_Apply() {
	// Two 1×4×4 images.
	base := make([]float32, 2*16)
	for i := range base {
		base[i] = float32(i%16) / 15
	}
	cfg := augment.Config{Shift: 1, Mixup: 0.2}
	p, err := augment.New(cfg, 7, []int{1, 4, 4})
	if err != nil {
		fmt.Println(err)
		return
	}
	a, b := make([]float32, 16), make([]float32, 16)
	mix := p.Apply(a, base, 0, 3) // copy 3 of example 0
	p.Apply(b, base, 0, 3)        // the same triple again
	fmt.Println("same copy:", slices.Equal(a, b))
	fmt.Println("mixed with example", mix.Partner)
	p.Apply(a, base, 0, 0)
	fmt.Println("copy 0 is the original:", slices.Equal(a, base[:16]))
	// Output:
	// same copy: true
	// mixed with example 1
	// copy 0 is the original: true
}

func ExampleConfig_Key() {
	cfg := augment.Config{Shift: 2, Rotate: 10, Elastic: augment.Elastic{Alpha: 34, Sigma: 4}}
	fmt.Println(cfg.Key())
	fmt.Println(augment.Config{}.Key())
	// Output:
	// augment/v1 shift=2 rotate=10 elastic.alpha=34 elastic.sigma=4
	// augment/v1 none
}

func ExampleConfig_Validate() {
	err := augment.Config{Rotate: 200, Elastic: augment.Elastic{Alpha: 34}}.Validate()
	fmt.Println(err)
	// Output:
	// augment: rotate must be in [0, 180] degrees, got 200
	// augment: elastic needs both alpha and sigma (e.g. alpha 34, sigma 4), got alpha 34 and sigma 0
}
