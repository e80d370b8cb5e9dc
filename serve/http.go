package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ContentTypeTensor is the binary body: little-endian float32 values,
// n × input size in a request and n × classes in the answer.
const ContentTypeTensor = "application/octet-stream"

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/predict", s.predict)
	mux.HandleFunc("GET /v1/model", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.cfg.Info)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.shuttingDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "shutting down\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{}))
	return mux
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.arriving.Add(1)
	queued := false
	code := s.answer(w, r, &queued)
	if !queued {
		s.arriving.Add(-1)
	}
	s.met.latency.Observe(time.Since(start).Seconds())
	s.met.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	s.answered.Add(1)
}

// answer handles one /v1/predict request and returns the status it sent.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, queued *bool) int {
	binaryBody := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err == nil && mt == ContentTypeTensor:
			binaryBody = true
		case err == nil && mt == "application/json":
		default:
			return fail(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/json or %s", ct, ContentTypeTensor))
		}
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 { // do not pin rare huge bodies
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes (--max-body)", mbe.Limit))
		}
		return fail(w, http.StatusBadRequest, "reading body: "+err.Error())
	}
	in := s.m.InputSize()
	var x []float32
	var n int
	var err error
	if binaryBody {
		x, n, err = decodeTensor(buf.Bytes(), in)
	} else {
		x, n, err = decodeJSON(buf.Bytes(), in)
	}
	if err != nil {
		return failErr(w, err)
	}
	logits, err := s.submit(r.Context(), x, n, queued)
	if err != nil {
		return failErr(w, err)
	}
	if binaryBody {
		b := make([]byte, 4*len(logits))
		for i, v := range logits {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		w.Header().Set("Content-Type", ContentTypeTensor)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
		return http.StatusOK
	}
	classes := s.m.Classes()
	resp := predictResponse{Logits: make([][]float32, n), Classes: make([]int, n)}
	for i := range n {
		row := logits[i*classes : (i+1)*classes]
		resp.Logits[i] = row
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		resp.Classes[i] = best
	}
	return writeJSON(w, http.StatusOK, resp)
}

type predictRequest struct {
	Inputs []json.RawMessage `json:"inputs"`
}

type predictResponse struct {
	Logits  [][]float32 `json:"logits"`
	Classes []int       `json:"classes"`
}

type errorResponse struct {
	Error string `json:"error"`
}

// decodeJSON reads {"inputs": [...]}: each example a flat array of
// inSize numbers, or arrays nested by the input shape.
func decodeJSON(b []byte, inSize int) ([]float32, int, error) {
	if x, n, ok := parseFlatInputs(b, inSize); ok {
		return x, n, nil
	}
	// Flat examples of the right size that the fast parser did not take
	// (a key besides inputs, say), parsed once. Anything else is parsed
	// again below, for nesting or for a precise message.
	var flat struct {
		Inputs [][]float32 `json:"inputs"`
	}
	if json.Unmarshal(b, &flat) == nil && len(flat.Inputs) > 0 {
		x := make([]float32, 0, len(flat.Inputs)*inSize)
		for _, row := range flat.Inputs {
			if len(row) != inSize {
				x = nil
				break
			}
			x = append(x, row...)
		}
		if x != nil {
			return x, len(flat.Inputs), nil
		}
	}
	var req predictRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, 0, inputErrorf(http.StatusBadRequest, "malformed JSON body: %v; send {\"inputs\": [[...], ...]}", err)
	}
	if req.Inputs == nil {
		return nil, 0, inputErrorf(http.StatusBadRequest, `no "inputs" field; send {"inputs": [[...], ...]}`)
	}
	x := make([]float32, 0, len(req.Inputs)*inSize)
	for i, raw := range req.Inputs {
		before := len(x)
		var err error
		x, err = appendFlat(x, raw)
		if err != nil {
			return nil, 0, inputErrorf(http.StatusBadRequest, "inputs[%d]: %v", i, err)
		}
		if got := len(x) - before; got != inSize {
			return nil, 0, inputErrorf(http.StatusBadRequest, "inputs[%d] has %d values; the model takes %d per example", i, got, inSize)
		}
	}
	return x, len(req.Inputs), nil
}

// appendFlat appends the numbers of raw, an array of numbers or of such
// arrays, in row-major order.
func appendFlat(x []float32, raw json.RawMessage) ([]float32, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '[' {
		return x, fmt.Errorf("not an array of numbers: %s", truncate(raw))
	}
	var flat []float32
	err := json.Unmarshal(raw, &flat)
	if err == nil {
		return append(x, flat...), nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && strings.HasPrefix(te.Value, "number") {
		// JSON has no NaN or Inf; a number beyond float32 is the
		// non-finite input it can carry.
		return x, fmt.Errorf("value at offset %d is a %s outside float32's range; inputs must be finite", te.Offset, te.Value)
	}
	var nested []json.RawMessage
	if err := json.Unmarshal(raw, &nested); err != nil {
		return x, fmt.Errorf("not an array of numbers: %s", truncate(raw))
	}
	for _, r := range nested {
		var err error
		if x, err = appendFlat(x, r); err != nil {
			return x, err
		}
	}
	return x, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// decodeTensor reads little-endian float32 values, a whole number of
// examples, all finite.
func decodeTensor(b []byte, inSize int) ([]float32, int, error) {
	ex := 4 * inSize
	if len(b) == 0 || len(b)%ex != 0 {
		return nil, 0, inputErrorf(http.StatusBadRequest, "binary body of %d bytes: must be a positive multiple of %d (%d float32 values per example)", len(b), ex, inSize)
	}
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(x[i])) || math.IsInf(float64(x[i]), 0) {
			return nil, 0, inputErrorf(http.StatusBadRequest, "value %d (example %d, index %d) is %v; inputs must be finite", i, i/inSize, i%inSize, x[i])
		}
	}
	return x, len(b) / ex, nil
}

func failErr(w http.ResponseWriter, err error) int {
	var ie *InputError
	switch {
	case errors.As(err, &ie):
		return fail(w, ie.Status, ie.Msg)
	case errors.Is(err, ErrOverloaded):
		w.Header().Set("Retry-After", "1")
		return fail(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, ErrClosed):
		w.Header().Set("Connection", "close")
		return fail(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, errCancelled), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client has gone; nobody reads this.
		return fail(w, 499, "request cancelled")
	default:
		return fail(w, http.StatusInternalServerError, err.Error())
	}
}

func fail(w http.ResponseWriter, status int, msg string) int {
	return writeJSON(w, status, errorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encoding the answer failed"}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
	return status
}
