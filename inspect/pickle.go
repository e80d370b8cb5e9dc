package inspect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
)

// This file decodes the pickles in PyTorch's archives (data.pkl) into
// plain values without running anything: a global is a name, a call of
// one is a record of the name and its arguments. The few callables that
// PyTorch's archives use to rebuild tensors are recognised by name, so
// that the tensors' names, dtypes and shapes can be listed.

// pyGlobal is a global a pickle names (module and name).
type pyGlobal struct{ module, name string }

func (g pyGlobal) String() string { return g.module + "." + g.name }

// pyObject is an instance a pickle creates (NEWOBJ, or REDUCE of a
// callable that is not recognised), with the state BUILD gives it.
type pyObject struct {
	class pyGlobal
	args  []any
	state any
}

type pyDict struct {
	keys, vals []any
}

type pyList struct{ items []any }

type pyTuple []any

type pyPersistent struct{ id any }

// pyTensor is a tensor rebuilt by torch._utils._rebuild_tensor_v2.
type pyTensor struct {
	dtype string
	shape []int
}

type mark struct{}

// storageDTypes maps PyTorch's storage classes to safetensors' dtype names.
var storageDTypes = map[string]string{
	"FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16", "BFloat16Storage": "BF16",
	"LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
	"ByteStorage": "U8", "BoolStorage": "BOOL",
}

// maxPickleDepth bounds nesting in the decoded values.
const maxPickleDepth = 1000

var errPickle = errors.New("unsupported or corrupt pickle")

// unpickle decodes a pickle (protocols 2 to 5) into plain values.
func unpickle(b []byte) (any, error) {
	var (
		stack []any
		marks []int
		memo  = map[uint64]any{}
		pos   int
	)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: at byte %d: %s", errPickle, pos, fmt.Sprintf(format, args...))
	}
	take := func(n int) ([]byte, error) {
		if n < 0 || pos+n > len(b) {
			return nil, fail("truncated")
		}
		v := b[pos : pos+n]
		pos += n
		return v, nil
	}
	uint := func(n int) (uint64, error) {
		v, err := take(n)
		if err != nil {
			return 0, err
		}
		var x uint64
		for i := n - 1; i >= 0; i-- {
			x = x<<8 | uint64(v[i])
		}
		return x, nil
	}
	line := func() (string, error) {
		i := slices.Index(b[pos:], '\n')
		if i < 0 {
			return "", fail("truncated")
		}
		s := string(b[pos : pos+i])
		pos += i + 1
		return s, nil
	}
	pop := func() (any, error) {
		if len(stack) == 0 || (len(marks) > 0 && len(stack) == marks[len(marks)-1]) {
			return nil, fail("stack underflow")
		}
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return v, nil
	}
	popMark := func() ([]any, error) {
		if len(marks) == 0 {
			return nil, fail("no mark")
		}
		m := marks[len(marks)-1]
		marks = marks[:len(marks)-1]
		if m > len(stack) {
			return nil, fail("mark past the stack")
		}
		items := slices.Clone(stack[m:])
		stack = stack[:m]
		return items, nil
	}
	top := func() (any, error) {
		if len(stack) == 0 {
			return nil, fail("empty stack")
		}
		return stack[len(stack)-1], nil
	}
	setItems := func(d any, kv []any) error {
		dict, ok := d.(*pyDict)
		if !ok {
			if _, isObj := d.(*pyObject); isObj {
				return nil // a dict subclass rebuilt by its own code: ignored
			}
			return fail("SETITEMS on %T", d)
		}
		if len(kv)%2 != 0 {
			return fail("odd SETITEMS")
		}
		for i := 0; i < len(kv); i += 2 {
			dict.keys = append(dict.keys, kv[i])
			dict.vals = append(dict.vals, kv[i+1])
		}
		return nil
	}
	for pos < len(b) {
		op := b[pos]
		pos++
		var err error
		switch op {
		case 0x80: // PROTO
			_, err = take(1)
		case 0x95: // FRAME
			_, err = take(8)
		case '.': // STOP
			if len(stack) != 1 {
				return nil, fail("%d values left at STOP", len(stack))
			}
			return stack[0], nil
		case '(': // MARK
			marks = append(marks, len(stack))
		case 'c': // GLOBAL
			var m, n string
			if m, err = line(); err == nil {
				n, err = line()
			}
			stack = append(stack, pyGlobal{m, n})
		case 0x93: // STACK_GLOBAL
			var n, m any
			if n, err = pop(); err == nil {
				m, err = pop()
			}
			ms, ok1 := m.(string)
			ns, ok2 := n.(string)
			if err == nil && (!ok1 || !ok2) {
				err = fail("STACK_GLOBAL of non-strings")
			}
			stack = append(stack, pyGlobal{ms, ns})
		case 'q', 'r', 0x94: // BINPUT, LONG_BINPUT, MEMOIZE
			var k uint64
			switch op {
			case 'q':
				k, err = uint(1)
			case 'r':
				k, err = uint(4)
			default:
				k = uint64(len(memo))
			}
			var v any
			if err == nil {
				v, err = top()
			}
			memo[k] = v
		case 'h', 'j': // BINGET, LONG_BINGET
			n := 1
			if op == 'j' {
				n = 4
			}
			var k uint64
			if k, err = uint(n); err == nil {
				v, ok := memo[k]
				if !ok {
					err = fail("memo %d unset", k)
				}
				stack = append(stack, v)
			}
		case ')':
			stack = append(stack, pyTuple{})
		case ']':
			stack = append(stack, &pyList{})
		case '}':
			stack = append(stack, &pyDict{})
		case 0x8f: // EMPTY_SET
			stack = append(stack, &pyList{})
		case 't', 0x91: // TUPLE, FROZENSET
			var items []any
			if items, err = popMark(); err == nil {
				stack = append(stack, pyTuple(items))
			}
		case 0x85, 0x86, 0x87: // TUPLE1..3
			t := make(pyTuple, int(op-0x85)+1)
			for i := len(t) - 1; i >= 0 && err == nil; i-- {
				t[i], err = pop()
			}
			stack = append(stack, t)
		case 'X', 0x8c, 0x8d, 'B', 'C', 0x8e: // strings and bytes
			n := map[byte]int{'X': 4, 0x8c: 1, 0x8d: 8, 'B': 4, 'C': 1, 0x8e: 8}[op]
			var l uint64
			if l, err = uint(n); err == nil {
				if l > uint64(len(b)) {
					err = fail("truncated")
					break
				}
				var v []byte
				if v, err = take(int(l)); err == nil {
					if op == 'B' || op == 'C' || op == 0x8e {
						stack = append(stack, slices.Clone(v))
					} else {
						stack = append(stack, string(v))
					}
				}
			}
		case 0x88:
			stack = append(stack, true)
		case 0x89:
			stack = append(stack, false)
		case 'N':
			stack = append(stack, nil)
		case 'J':
			var v uint64
			v, err = uint(4)
			stack = append(stack, int64(int32(v)))
		case 'K':
			var v uint64
			v, err = uint(1)
			stack = append(stack, int64(v))
		case 'M':
			var v uint64
			v, err = uint(2)
			stack = append(stack, int64(v))
		case 0x8a, 0x8b: // LONG1, LONG4
			n := 1
			if op == 0x8b {
				n = 4
			}
			var l uint64
			if l, err = uint(n); err == nil {
				var v []byte
				if l > uint64(len(b)) {
					err = fail("truncated")
					break
				}
				if v, err = take(int(l)); err == nil {
					stack = append(stack, longValue(v))
				}
			}
		case 'G':
			var v []byte
			if v, err = take(8); err == nil {
				stack = append(stack, math.Float64frombits(binary.BigEndian.Uint64(v)))
			}
		case 's': // SETITEM
			var k, v, d any
			if v, err = pop(); err == nil {
				if k, err = pop(); err == nil {
					if d, err = top(); err == nil {
						err = setItems(d, []any{k, v})
					}
				}
			}
		case 'u': // SETITEMS
			var kv []any
			var d any
			if kv, err = popMark(); err == nil {
				if d, err = top(); err == nil {
					err = setItems(d, kv)
				}
			}
		case 'a', 'e', 0x90: // APPEND, APPENDS, ADDITEMS
			var items []any
			if op == 'a' {
				var v any
				v, err = pop()
				items = []any{v}
			} else {
				items, err = popMark()
			}
			if err == nil {
				var l any
				if l, err = top(); err == nil {
					if list, ok := l.(*pyList); ok {
						list.items = append(list.items, items...)
					}
				}
			}
		case 'b': // BUILD
			var state, obj any
			if state, err = pop(); err == nil {
				if obj, err = top(); err == nil {
					if o, ok := obj.(*pyObject); ok {
						o.state = state
					}
				}
			}
		case 0x81, 'R': // NEWOBJ, REDUCE
			var args, callable any
			if args, err = pop(); err == nil {
				callable, err = pop()
			}
			if err != nil {
				break
			}
			g, ok := callable.(pyGlobal)
			a, ok2 := args.(pyTuple)
			if !ok || !ok2 {
				err = fail("call of %T with %T", callable, args)
				break
			}
			stack = append(stack, call(g, a))
		case 'Q': // BINPERSID
			var id any
			id, err = pop()
			stack = append(stack, pyPersistent{id})
		case '0': // POP
			_, err = pop()
		case '1': // POP_MARK
			_, err = popMark()
		case '2': // DUP
			var v any
			v, err = top()
			stack = append(stack, v)
		default:
			return nil, fail("opcode 0x%02x", op)
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: no STOP", errPickle)
}

func longValue(v []byte) any {
	if len(v) <= 8 {
		var x int64
		for i := len(v) - 1; i >= 0; i-- {
			x = x<<8 | int64(v[i])
		}
		if len(v) > 0 && len(v) < 8 && v[len(v)-1]&0x80 != 0 {
			x -= 1 << (8 * len(v))
		}
		return x
	}
	be := slices.Clone(v)
	slices.Reverse(be)
	return new(big.Int).SetBytes(be) // sign ignored: only sizes matter here
}

// call records a call of g; the callables that rebuild tensors and
// containers in PyTorch's pickles are interpreted, by name only.
func call(g pyGlobal, args pyTuple) any {
	switch g.String() {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		if len(args) >= 3 {
			t := &pyTensor{dtype: "?"}
			if p, ok := args[0].(pyPersistent); ok {
				if id, ok := p.id.(pyTuple); ok && len(id) >= 2 {
					if sg, ok := id[1].(pyGlobal); ok {
						if d, ok := storageDTypes[sg.name]; ok {
							t.dtype = d
						} else {
							t.dtype = sg.name
						}
					}
				}
			}
			if size, ok := args[2].(pyTuple); ok {
				t.shape = []int{}
				for _, d := range size {
					if n, ok := d.(int64); ok {
						t.shape = append(t.shape, int(n))
					}
				}
			}
			return t
		}
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(args) >= 1 {
			return args[0]
		}
	case "collections.OrderedDict":
		return &pyDict{}
	case "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.build_doublelist", "torch.jit._pickle.build_boollist":
		if len(args) == 1 {
			return args[0]
		}
	}
	return &pyObject{class: g, args: args}
}

// archiveTensors lists the tensors of a decoded data.pkl: a TorchScript
// module's parameters and buffers by their path from the root module
// (params: each class's __parameters__), or a pickled state dict's.
func archiveTensors(root any, params map[string][]string) ([]ArchiveTensor, []Module, error) {
	var out []ArchiveTensor
	var modules []Module
	seen := map[any]bool{}
	var walk func(prefix string, v any, class string, depth int) error
	walk = func(prefix string, v any, class string, depth int) error {
		if depth > maxPickleDepth {
			return fmt.Errorf("%w: nested more than %d deep", errPickle, maxPickleDepth)
		}
		switch v := v.(type) {
		case *pyObject:
			if seen[v] || !strings.HasPrefix(v.class.module, "__torch__") {
				return nil
			}
			seen[v] = true
			modules = append(modules, Module{Name: strings.TrimSuffix(prefix, "."), Class: className(v.class)})
			return walk(prefix, v.state, v.class.String(), depth+1)
		case *pyDict:
			if seen[v] {
				return nil
			}
			seen[v] = true
			for i, k := range v.keys {
				name, ok := k.(string)
				if !ok {
					continue
				}
				switch val := v.vals[i].(type) {
				case *pyTensor:
					t := ArchiveTensor{Name: prefix + name, DType: val.dtype, Shape: val.shape}
					if ps, ok := params[class]; ok {
						t.Buffer = !slices.Contains(ps, name)
					} else {
						_, last := splitName(name) // a state dict's keys are dotted
						t.Buffer = slices.Contains(batchNormStats, last)
					}
					out = append(out, t)
				default:
					if err := walk(prefix+name+".", val, "", depth+1); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	if err := walk("", root, "", 0); err != nil {
		return nil, nil, err
	}
	return out, modules, nil
}

// className is a TorchScript class's Python name: without the
// "__torch__." namespace and the "___torch_mangle_N" parts that tell
// apart classes of one name.
func className(g pyGlobal) string {
	var parts []string
	for _, p := range strings.Split(g.String(), ".") {
		if p != "__torch__" && !strings.HasPrefix(p, "___torch_mangle_") {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ".")
}
