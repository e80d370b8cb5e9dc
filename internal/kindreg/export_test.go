package kindreg

import "github.com/distill-dev/distill/model"

// RegisterAs registers kind k in the engine e with the implementation
// that kind like has there, for tests that need an engine to know a toy
// kind, and returns the function that removes it again.
func RegisterAs(e Engine, k, like model.Kind) (undo func(), ok bool) {
	type aliaser interface {
		alias(k, like model.Kind) bool
		unregister(k model.Kind)
	}
	a, isReg := e.(aliaser)
	if !isReg || !a.alias(k, like) {
		return nil, false
	}
	return func() { a.unregister(k) }, true
}

func (r *Registry[T]) alias(k, like model.Kind) bool {
	impl, err := r.Lookup(like)
	if err != nil {
		return false
	}
	r.Register(k, impl)
	return true
}

// unregister removes kind k again.
func (r *Registry[T]) unregister(k model.Kind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.impl, k)
}

// NewUnlisted is New for a registry that Engines does not list, so that
// tests of Registry itself leave the conformance walk alone.
func NewUnlisted[T any](name string, needs func(model.KindInfo) bool) *Registry[T] {
	return &Registry[T]{name: name, needs: needs, impl: map[model.Kind]T{}}
}
