package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distill-dev/distill/infer"
	"github.com/distill-dev/distill/model"
	"github.com/distill-dev/distill/serve"
)

// syncBuffer collects a process's stderr while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeEndToEnd runs `distill serve` on a saved model, checks an
// answer against the runtime, sends SIGTERM while clients keep sending,
// and checks the process answered every request it accepted and exited 0.
func TestServeEndToEnd(t *testing.T) {
	bin := buildCLI(t)
	spec, err := model.MLP(model.MLPConfig{Name: "e2e", Input: []int{6}, Hidden: []int{8}, Classes: 4})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spec.Init(7)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "student")
	if err := model.Save(path, spec, w); err != nil {
		t.Fatal(err)
	}
	p, err := infer.Compile(spec, w)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "serve", path, "--addr", "127.0.0.1:0", "--max-batch", "8", "--max-wait", "1ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waitDone := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waitDone) }()
	defer func() {
		cmd.Process.Kill() // harmless once it has exited
		<-waitDone
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	var addr string
	select {
	case l := <-lines:
		var ok bool
		if addr, ok = strings.CutPrefix(l, "listening on "); !ok {
			t.Fatalf("first line %q, want \"listening on ADDR\"", l)
		}
	case err := <-exited:
		t.Fatalf("distill serve exited early: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no address after 60 s\n%s", stderr.String())
	}
	url := "http://" + addr

	x := []float32{0.5, -1, 2, 0, 0.25, 3, 1, 1, 1, -1, -1, -1}
	want := make([]float32, 2*4)
	if err := p.Forward(x, 2, want); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/v1/predict", "application/json", strings.NewReader(`{"inputs": [[0.5, -1, 2, 0, 0.25, 3], [1, 1, 1, -1, -1, -1]]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Logits [][]float32 }
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("predict: status %d, %v", resp.StatusCode, err)
	}
	if fmt.Sprint(got.Logits) != fmt.Sprint([][]float32{want[:4], want[4:]}) {
		t.Errorf("logits %v, runtime %v", got.Logits, want)
	}

	// Load, then SIGTERM in the middle of it.
	type out struct {
		res serve.LoadResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := serve.Load(context.Background(), url+"/v1/predict", serve.LoadConfig{
			Requests: 5000, Duration: 20 * time.Second, Concurrency: 8,
			Body: []byte(`{"inputs": [[1, 2, 3, 4, 5, 6]]}`), ContentType: "application/json",
		})
		done <- out{res, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("distill serve after SIGTERM: %v, want exit 0\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("still running 60 s after SIGTERM\n%s", stderr.String())
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	m := regexp.MustCompile(`msg=stopped answered=(\d+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no final count in the log:\n%s", stderr.String())
	}
	serverAnswered, _ := strconv.Atoi(m[1])
	clientGot := 1 // the first request
	for code, n := range o.res.Status {
		clientGot += n
		if code != 200 && code != 503 {
			t.Errorf("%d answers with status %d", n, code)
		}
	}
	if clientGot != serverAnswered {
		t.Errorf("the server answered %d requests, the clients received %d (%v; %d without answer, first: %v)",
			serverAnswered, clientGot, o.res.Status, o.res.Errors, o.res.FirstError)
	}
	if o.res.Status[200] == 0 {
		t.Errorf("no request succeeded before SIGTERM: %v\n%s", o.res.Status, stderr.String())
	}
}

// TestServeUsageErrors checks the exit codes for a missing model and a
// bad flag.
func TestServeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"serve", filepath.Join(t.TempDir(), "missing")},
		{"serve", filepath.Join(t.TempDir(), "missing"), "--max-batch", "x"},
	} {
		if code := execute(context.Background(), args); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
