package serve

import (
	"strconv"
	"unsafe"
)

// parseFlatInputs parses the common request body {"inputs": [[v, ...],
// ...]} of flat examples of inSize numbers each, several times faster
// than encoding/json's reflection (whose scanner alone costs ~100 µs for
// an MNIST-sized example, more than the model). ok is false for anything
// else, valid or not: nested examples, other keys, a wrong size, a
// number out of float32's range; decodeJSON then parses with
// encoding/json for the general case and its precise errors. When ok,
// the values are those encoding/json gives (strconv.ParseFloat with
// bitSize 32 on each number, which must follow JSON's number grammar).
func parseFlatInputs(b []byte, inSize int) (x []float32, n int, ok bool) {
	p := jsonScan{b: b}
	if !p.byte('{') || !p.literal(`"inputs"`) || !p.byte(':') || !p.byte('[') {
		return nil, 0, false
	}
	x = make([]float32, 0, inSize)
	if p.byte(']') {
		return nil, 0, false // no examples: the slow path says so
	}
	for {
		if !p.byte('[') {
			return nil, 0, false
		}
		start := len(x)
		if !p.byte(']') {
			for {
				tok, good := p.number()
				if !good {
					return nil, 0, false
				}
				// The conversion does not escape: no copy, no garbage.
				v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 32)
				if err != nil {
					return nil, 0, false
				}
				x = append(x, float32(v))
				if p.byte(']') {
					break
				}
				if !p.byte(',') {
					return nil, 0, false
				}
			}
		}
		if len(x)-start != inSize {
			return nil, 0, false
		}
		n++
		if p.byte(']') {
			break
		}
		if !p.byte(',') {
			return nil, 0, false
		}
	}
	if !p.byte('}') {
		return nil, 0, false
	}
	p.space()
	return x, n, p.i == len(p.b)
}

// jsonScan walks a JSON text.
type jsonScan struct {
	b []byte
	i int
}

func (p *jsonScan) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte skips white space and then c, reporting whether c was there.
func (p *jsonScan) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonScan) literal(s string) bool {
	p.space()
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// number skips white space and returns the JSON number that follows:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonScan) number() ([]byte, bool) {
	p.space()
	b, start := p.b, p.i
	i := start
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	p.i = i
	return b[start:i], true
}
