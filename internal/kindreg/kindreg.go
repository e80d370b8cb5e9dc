// Package kindreg holds the per-kind implementation tables of the
// engines that compute layers (the training backends, the FP32 and INT8
// runtimes, quantize, ONNX export, the float64 reference). Each engine
// fills one Registry at package initialisation instead of switching on
// kind strings, so a kind it lacks is an error naming the kind and the
// engine, and Check, which walks every kind × every registered engine,
// names the engines that forgot one.
package kindreg

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/distill-dev/distill/model"
)

// Engine is the part of a Registry that Check sees.
type Engine interface {
	Name() string
	// Needs reports whether the engine must implement kind k; an engine
	// may be exempt by a property of the kind's descriptor (quantize only
	// handles quantizable kinds), never by omission.
	Needs(k model.KindInfo) bool
	Has(k model.Kind) bool
}

// Registry maps layer kinds to one engine's implementations.
type Registry[T any] struct {
	name  string
	needs func(model.KindInfo) bool
	mu    sync.RWMutex
	impl  map[model.Kind]T
}

var (
	enginesMu sync.Mutex
	engines   []Engine
)

// New returns the registry of the engine called name and records it for
// Check. needs, when not nil, exempts the kinds whose descriptor it
// rejects; nil means the engine must implement every kind.
func New[T any](name string, needs func(model.KindInfo) bool) *Registry[T] {
	r := &Registry[T]{name: name, needs: needs, impl: map[model.Kind]T{}}
	enginesMu.Lock()
	engines = append(engines, r)
	enginesMu.Unlock()
	return r
}

// Name is the engine's name.
func (r *Registry[T]) Name() string { return r.name }

// Needs reports whether the engine must implement the kind info describes.
// No engine needs an External kind: something outside distill computes it.
func (r *Registry[T]) Needs(info model.KindInfo) bool {
	if info.External {
		return false
	}
	return r.needs == nil || r.needs(info)
}

// Has reports whether the engine implements k.
func (r *Registry[T]) Has(k model.Kind) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.impl[k]
	return ok
}

// Register sets the implementation of kind k. Engines call it from
// package initialisation; registering a kind twice is a programming
// error in that engine and panics there, at start-up.
func (r *Registry[T]) Register(k model.Kind, impl T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.impl[k]; dup {
		panic(fmt.Sprintf("kindreg: %s registers layer kind %q twice", r.name, k))
	}
	r.impl[k] = impl
}

// Lookup returns the implementation of kind k, or an error naming the
// kind and the engine.
func (r *Registry[T]) Lookup(k model.Kind) (T, error) {
	r.mu.RLock()
	impl, ok := r.impl[k]
	r.mu.RUnlock()
	if !ok {
		var zero T
		info, known := model.Describe(k)
		if !known {
			return zero, fmt.Errorf("unknown layer kind %q (known: %v)", k, model.Kinds())
		}
		if info.External {
			return zero, fmt.Errorf("layer kind %q is computed outside distill (by the runtime that opened the model file, e.g. ONNX Runtime for an ONNX teacher), so %s cannot run it: use that model through its own teacher, not as a spec", k, r.name)
		}
		return zero, fmt.Errorf("layer kind %q is not implemented by %s", k, r.name)
	}
	return impl, nil
}

// Engines lists the registered engines, sorted by name.
func Engines() []Engine {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	es := slices.Clone(engines)
	slices.SortFunc(es, func(a, b Engine) int { return strings.Compare(a.Name(), b.Name()) })
	return es
}

// Descriptors returns the descriptors of every kind in model's table.
func Descriptors() []model.KindInfo {
	var infos []model.KindInfo
	for _, k := range model.Kinds() {
		info, _ := model.Describe(k)
		infos = append(infos, info)
	}
	return infos
}

// Missing lists, for each kind in kinds, the engines that need it but
// lack it; kinds that every engine implements are absent.
func Missing(kinds []model.KindInfo, engines []Engine) map[model.Kind][]string {
	out := map[model.Kind][]string{}
	for _, info := range kinds {
		for _, e := range engines {
			if e.Needs(info) && !e.Has(info.Kind) {
				out[info.Kind] = append(out[info.Kind], e.Name())
			}
		}
	}
	return out
}

// Check returns an error naming, per kind, every engine that lacks it.
func Check(kinds []model.KindInfo, engines []Engine) error {
	miss := Missing(kinds, engines)
	if len(miss) == 0 {
		return nil
	}
	var b strings.Builder
	for _, info := range kinds {
		if es := miss[info.Kind]; len(es) > 0 {
			fmt.Fprintf(&b, "\n  layer kind %q is not implemented by: %s", info.Kind, strings.Join(es, ", "))
		}
	}
	return fmt.Errorf("kindreg: engines lack layer kinds:%s", b.String())
}
