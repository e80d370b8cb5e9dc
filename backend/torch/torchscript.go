//go:build torch

package torch

import (
	"fmt"
	"slices"

	lib "github.com/sugarme/gotch/libtch"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/internal/fileio"
	"github.com/distill-dev/distill/model"
)

// ScriptModel is a TorchScript module (torch.jit.script or torch.jit.trace,
// saved with torch.jit.save or Module.save) used as an inference-only
// backend.Model, typically a teacher trained in PyTorch. It runs on its
// own thread; Close releases the module and the thread.
type ScriptModel struct {
	eng    *engine
	device int
	spec   model.Spec
	inSize int
	mod    lib.Cmodule
	closed bool
}

var _ backend.Model = (*ScriptModel)(nil)

// LoadTorchScript loads the TorchScript module at path onto device ("auto",
// "cpu", "cuda" or "cuda:N") in eval mode. spec gives the input shape and
// the number of classes: the module must map a float32 batch [N, Input...]
// to [N, Classes] logits, which is checked with one example. Its layers,
// if any, must be the module's architecture (they name the parameters
// Weights returns); a spec with only Input and Classes is enough for
// Forward.
func LoadTorchScript(path string, spec model.Spec, device string) (backend.Model, error) {
	if len(spec.Input) == 0 || model.Numel(spec.Input) <= 0 || spec.Classes <= 0 {
		return nil, fmt.Errorf("torch backend: LoadTorchScript needs a spec with an input shape and classes > 0, got input %v, classes %d", spec.Input, spec.Classes)
	}
	if len(spec.Layers) > 0 {
		if err := spec.Validate(); err != nil {
			return nil, fmt.Errorf("torch backend: LoadTorchScript spec %q: %w", spec.Name, err)
		}
	}
	// libtorch opens the file itself, and would block on a FIFO.
	if err := fileio.Check(path); err != nil {
		return nil, fmt.Errorf("torch backend: TorchScript module: %w", err)
	}
	eng, err := newEngine(0)
	if err != nil {
		return nil, err
	}
	m := &ScriptModel{eng: eng, spec: spec, inSize: model.Numel(spec.Input)}
	err = eng.do(func() error {
		if m.device, err = parseDevice(device); err != nil {
			return err
		}
		m.mod = lib.AtmLoadOnDevice(path, int32(m.device))
		if err := lastErr(); err != nil || m.mod == nil {
			m.mod = nil
			return fmt.Errorf("torch backend: loading TorchScript %s (save it with torch.jit.save from a PyTorch no newer than this libtorch): %w", path, err)
		}
		lib.AtmEval(m.mod)
		return lastErr()
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	out := make([]float32, spec.Classes)
	if err := m.Forward(make([]float32, m.inSize), 1, out); err != nil {
		m.Close()
		return nil, fmt.Errorf("torch backend: TorchScript %s does not fit spec %q: %w", path, spec.Name, err)
	}
	return m, nil
}

// Spec returns the spec given to LoadTorchScript.
func (m *ScriptModel) Spec() model.Spec { return m.spec }

// Device returns "cpu" or "cuda:N".
func (m *ScriptModel) Device() string { return deviceName(m.device) }

// Forward runs the module's forward method without autograd on n examples
// of x and writes the n × Classes logits into out.
func (m *ScriptModel) Forward(x []float32, n int, out []float32) error {
	k := m.spec.Classes
	if err := checkForward("Forward", n, x, m.inSize, out, k, false); err != nil {
		return err
	}
	return infer(m.do, m.device, false, x[:n*m.inSize], append([]int{n}, m.spec.Input...), out[:n*k], func(s *scope, xt ctensor) ctensor {
		y := s.call("TorchScript forward", func(o *ctensor) {
			in := []ctensor{xt}
			*o = lib.AtmForward(m.mod, &in[0], 1)
		})
		if sh := s.shape(y); s.err == nil && !slices.Equal(sh, []int{n, k}) {
			s.fail(fmt.Errorf("the module returned shape %v for a batch of %d, want [%d %d] logits", sh, n, n, k))
		}
		return y
	})
}

// Weights returns host copies of the module's parameters under their
// TorchScript names (e.g. "fc1.weight"). When the spec has layers, the
// result must pass spec.Check; a spec with buffers (batchnorm running
// statistics) is an error, as gotch's API cannot read a module's buffers.
func (m *ScriptModel) Weights() (model.Weights, error) {
	if bs, err := m.spec.Buffers(); err == nil && len(bs) > 0 {
		return nil, fmt.Errorf("torch backend: spec %q has buffers (%s, …), and gotch's TorchScript API reads a module's parameters only: save the module's state_dict() with safetensors.torch.save_file and load it with model.LoadSafetensorsWeights", m.spec.Name, bs[0].Name)
	}
	w := model.Weights{}
	err := m.do(func() error {
		var data lib.LoadData
		ptr := lib.PStore.Set(&data)
		defer lib.PStore.Free(ptr)
		lib.AtmNamedParameters(m.mod, ptr)
		err := lastErr()
		s := newScope(m.device)
		s.owned = append(s.owned, namedHandles(data.NamedCtensors)...) // freed by s.free
		if err != nil {
			s.fail(fmt.Errorf("torch named_parameters: %w", err))
		}
		for _, nt := range data.NamedCtensors {
			t := model.NewTensor(s.shape(nt.Ctensor)...)
			s.toHost(nt.Ctensor, t.Data)
			w[nt.Name] = t
		}
		return s.free()
	})
	if err != nil {
		return nil, fmt.Errorf("torch backend: TorchScript parameters: %w", err)
	}
	if len(m.spec.Layers) > 0 {
		if err := m.spec.Check(w); err != nil {
			return nil, fmt.Errorf("torch backend: the TorchScript module's parameters do not match spec %q (name the PyTorch submodules as the spec's layers): %w", m.spec.Name, err)
		}
	}
	return w, nil
}

func namedHandles(ts []lib.NamedCtensor) []ctensor {
	r := make([]ctensor, len(ts))
	for i, t := range ts {
		r[i] = t.Ctensor
	}
	return r
}

func (m *ScriptModel) do(f func() error) error {
	return m.eng.do(func() error {
		if m.closed {
			return ErrClosed
		}
		return f()
	})
}

// Close frees the module and stops its thread.
func (m *ScriptModel) Close() error {
	err := m.eng.release(func() {
		if !m.closed {
			m.closed = true
			if m.mod != nil {
				lib.AtmFree(m.mod)
				m.mod = nil
			}
		}
	})
	m.eng.close()
	return err
}

// LoadTorchScript loads a TorchScript module on b's device (see the
// package function); it makes *Backend a backend.TorchScriptLoader.
func (b *Backend) LoadTorchScript(path string, spec model.Spec) (backend.Model, error) {
	return LoadTorchScript(path, spec, b.Device())
}
