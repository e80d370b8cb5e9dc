package gorgonia

import (
	"testing"

	"github.com/distill-dev/distill/backend/backendtest"
	"github.com/distill-dev/distill/model"
)

// Asking for many layer lists keeps at most maxLayerLists of them cached
// and still answers every request correctly.
func TestFeatureGraphCache(t *testing.T) {
	spec := backendtest.Specs(t)[2]
	w, err := spec.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := engine{}.Load(spec, w)
	if err != nil {
		t.Fatal(err)
	}
	m := bm.(*Model)
	defer m.Close()
	const n = 2
	x, _, _ := backendtest.Inputs(spec, n, 2)
	shapes, _ := spec.Shapes()
	for round := 0; round < 2; round++ {
		for li, l := range spec.Layers {
			feat := make([]float32, n*model.Numel(shapes[li]))
			if err := m.ForwardFeatures(x, n, []string{l.Name}, nil, [][]float32{feat}); err != nil {
				t.Fatal(err)
			}
			_, want, err := backendtest.ReferenceLayers(spec, w, x, n, nil, []string{l.Name})
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range want[0] {
				if d := float64(feat[i]) - v; d > 1e-4 || d < -1e-4 {
					t.Fatalf("round %d layer %q value %d = %v, reference %v", round, l.Name, i, feat[i], v)
				}
			}
			lists := map[string]bool{}
			for k := range m.fwd {
				lists[k.layers] = true
			}
			if len(lists) > maxLayerLists {
				t.Fatalf("%d layer lists cached, want at most %d", len(lists), maxLayerLists)
			}
		}
	}
}
