package serve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
)

// benchProgram is a distilled MNIST student of the size in Hinton et al.
// 2015 (784-800-800-10): the kind of model this server is for.
func benchProgram(b *testing.B) *infer.Program {
	spec, err := model.MLP(model.MLPConfig{Name: "student", Input: []int{784}, Hidden: []int{800, 800}, Classes: 10})
	if err != nil {
		b.Fatal(err)
	}
	return compileRandom(b, spec)
}

// benchResNet is recipes/fashion-resnet.yaml's teacher (a ResNet-8 of
// 16-32-64 channels on 1×28×28): 9.3 M multiply-adds per example against
// the MLP's 1.3 M, so the per-request HTTP cost weighs less.
func benchResNet(b *testing.B) *infer.Program {
	spec, err := model.Blocks(model.BlocksConfig{
		Name: "resnet8", Input: []int{1, 28, 28}, Stem: model.StemConfig{Channels: 16},
		Stages:  []model.Stage{{Channels: 16}, {Channels: 32, Stride: 2}, {Channels: 64, Stride: 2}},
		Classes: 10,
	})
	if err != nil {
		b.Fatal(err)
	}
	return compileRandom(b, spec)
}

func compileRandom(b *testing.B, spec model.Spec) *infer.Program {
	w, err := spec.Init(1)
	if err != nil {
		b.Fatal(err)
	}
	p, err := infer.Compile(spec, w)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchServer(b *testing.B, p *infer.Program, cfg Config) (string, *Server) {
	s, err := New(p, cfg)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	b.Cleanup(func() { s.Shutdown(context.Background()) })
	return "http://" + l.Addr().String() + "/v1/predict", s
}

// echoServer answers every request with 40 bytes after reading its
// body: the cost of net/http on loopback alone, the floor under any
// HTTP server's overhead.
func echoServer(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	reply := make([]byte, 40)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(reply)
	})}
	go hs.Serve(l)
	b.Cleanup(func() { hs.Close() })
	return "http://" + l.Addr().String() + "/"
}

// tcpEchoServer answers every request with a fixed 40-byte HTTP answer
// after reading its header lines and Content-Length body, with no HTTP
// library: the cost of a loopback TCP round trip of the same bytes, the
// floor under any server in any language on this machine.
func tcpEchoServer(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + strings.Repeat("x", 40))
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					length := 0
					for {
						line, err := r.ReadSlice('\n')
						if err != nil {
							return
						}
						h := strings.TrimSpace(string(line))
						if h == "" {
							break
						}
						if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Content-Length") {
							length, _ = strconv.Atoi(strings.TrimSpace(v))
						}
					}
					if _, err := r.Discard(length); err != nil {
						return
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() { l.Close() })
	return "http://" + l.Addr().String() + "/"
}

// BenchmarkServe measures what the server adds, against calling the
// runtime directly in the same run, interleaved so that both see the
// same machine load.
//
// batch1: one client (Load's lean HTTP/1.1 client), one example per
// request, over loopback;
// overhead-µs/req is the server's mean time per request minus the
// direct Forward's (goal < 30 µs); http-floor-µs/req is a bare
// net/http handler's round trip with the same body, the part of the
// overhead no server on net/http avoids; tcp-floor-µs/req is the same
// bytes' round trip through a socket with no HTTP library, the part no
// HTTP server on the machine avoids.
//
// throughput/model=M/examples=1: the server scenario (batch-1 requests
// from 64 concurrent clients, dynamically batched) against the offline
// scenario (direct Forward on batches of 64); server/offline is the ratio
// of examples per second (goal ≥ 0.8). examples=16 sends 16 examples per
// request, to show how much of the gap is the per-request HTTP cost. The
// load generator shares the machine with the server, as in a test on one
// box: on 2 cores its HTTP client costs about what the server's HTTP side
// does. model=mlp is HTTP-bound; model=resnet8 shows the ratio for a
// model whose compute dominates.
func BenchmarkServe(b *testing.B) {
	p := benchProgram(b)
	rng := rand.New(rand.NewPCG(1, 2))
	in := p.InputSize()

	b.Run("batch1", func(b *testing.B) {
		url, _ := benchServer(b, p, Config{})
		echo := echoServer(b)
		x := randomInputs(rng, 1, in)
		out := make([]float32, p.Classes())
		// Load's lean client, as the server scenario uses: net/http's
		// client would add its own cost (about as much as the server's
		// HTTP side) to every round trip.
		lean := func(url, ct string, body []byte) *leanClient {
			lc, err := newLeanClient(url, ct, body)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(lc.close)
			return lc
		}
		tensorClient := lean(url, ContentTypeTensor, tensorBody(x))
		jsonClient := lean(url, "application/json", jsonBody(x, 1))
		floorClient := lean(echo, ContentTypeTensor, tensorBody(x))
		tcpClient := lean(tcpEchoServer(b), ContentTypeTensor, tensorBody(x))
		call := func(lc *leanClient) time.Duration {
			t0 := time.Now()
			status, err := lc.post()
			if err != nil {
				b.Fatal(err)
			}
			if status != 200 {
				b.Fatalf("status %d", status)
			}
			return time.Since(t0)
		}
		var direct, tensor, js, floor, tcp time.Duration
		n := 0
		for b.Loop() {
			t0 := time.Now()
			if err := p.ForwardInline(x, 1, out); err != nil { // the call the server makes
				b.Fatal(err)
			}
			direct += time.Since(t0)
			tensor += call(tensorClient)
			js += call(jsonClient)
			floor += call(floorClient)
			tcp += call(tcpClient)
			n++
		}
		us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
		b.ReportMetric(us(direct), "direct-µs/req")
		b.ReportMetric(us(tensor), "server-µs/req")
		b.ReportMetric(us(tensor-direct), "overhead-µs/req")
		b.ReportMetric(us(js-direct), "json-overhead-µs/req")
		b.ReportMetric(us(floor), "http-floor-µs/req")
		b.ReportMetric(us(tcp), "tcp-floor-µs/req")
		b.ReportMetric(0, "ns/op") // one op is five calls; the metrics above say more
	})

	models := []struct {
		name string
		p    *infer.Program
	}{{"mlp", p}, {"resnet8", benchResNet(b)}}
	for _, m := range models {
		for _, per := range []int{1, 16} {
			b.Run(fmt.Sprintf("throughput/model=%s/examples=%d", m.name, per), func(b *testing.B) {
				benchThroughput(b, m.p, per)
			})
		}
	}
}

func benchThroughput(b *testing.B, p *infer.Program, per int) {
	const batch, clients, examples = 64, 64, 1024
	rng := rand.New(rand.NewPCG(3, 4))
	requests := examples / per
	url, s := benchServer(b, p, Config{MaxBatch: batch})
	x := randomInputs(rng, batch, p.InputSize())
	out := make([]float32, batch*p.Classes())
	body := tensorBody(x[:per*p.InputSize()])
	var offline, server time.Duration
	var served int
	for b.Loop() {
		t0 := time.Now()
		for range examples / batch {
			if err := p.Forward(x, batch, out); err != nil {
				b.Fatal(err)
			}
		}
		offline += time.Since(t0)
		res, err := Load(context.Background(), url, LoadConfig{
			Requests: requests, Duration: time.Minute, Concurrency: clients, Body: body, ContentType: ContentTypeTensor,
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Latencies) != requests {
			b.Fatalf("%d of %d requests answered 200: %v, %d errors (%v)", len(res.Latencies), requests, res.Status, res.Errors, res.FirstError)
		}
		server += res.Elapsed
		served += examples
	}
	off := float64(served) / offline.Seconds()
	srv := float64(served) / server.Seconds()
	b.ReportMetric(off, "offline-ex/s")
	b.ReportMetric(srv, "server-ex/s")
	b.ReportMetric(srv/off, "server/offline")
	mfs, err := s.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == MetricBatchSize {
			h := mf.GetMetric()[0].GetHistogram()
			b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "mean-batch")
		}
	}
	b.ReportMetric(0, "ns/op")
}
