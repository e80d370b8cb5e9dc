package serve

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadAnswer(t *testing.T) {
	for _, c := range []struct {
		name, in   string
		status     int
		keep, fail bool
		rest       string // what must be left unread: the next answer
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", 200, true, false, "NEXT"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\nNEXT", 200, true, false, "NEXT"},
		{"connection close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 503, false, false, ""},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false, false, ""},
		{"body to the end", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, false, false, ""},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, true, false, "NEXT"},
		{"lf only", "HTTP/1.1 400 Bad Request\nContent-Length: 1\n\nxNEXT", 400, true, false, "NEXT"},
		{"bad status", "HTTP/1.1 OK\r\n\r\n", 0, false, true, ""},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", 0, false, true, ""},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 200, false, true, ""},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 200, false, true, ""},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 200, false, true, ""},
		{"cut headers", "HTTP/1.1 200 OK\r\nContent-Le", 200, false, true, ""},
		{"header without colon", "HTTP/1.1 200 OK\r\nbogus\r\n\r\n", 200, false, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(c.in))
			status, keep, err := readAnswer(r)
			if (err != nil) != c.fail {
				t.Fatalf("err = %v, want failure %v", err, c.fail)
			}
			if c.fail {
				return
			}
			if status != c.status || keep != c.keep {
				t.Errorf("status %d keep %v, want %d %v", status, keep, c.status, c.keep)
			}
			rest := make([]byte, 16)
			n, _ := r.Read(rest)
			if string(rest[:n]) != c.rest {
				t.Errorf("left %q unread, want %q", rest[:n], c.rest)
			}
		})
	}
	if _, _, err := readAnswer(bufio.NewReader(strings.NewReader(""))); err != errNoAnswer {
		t.Errorf("empty stream: err = %v, want errNoAnswer", err)
	}
}

// TestLeanClientReconnects: requests over kept connections reach the
// server whole, and when the server closes a kept connection (here on
// every third request) the next request goes through on a new one.
func TestLeanClientReconnects(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, 8)
		k, _ := r.Body.Read(body)
		if r.Method != http.MethodPost || r.URL.Path != "/v1/predict" || r.Header.Get("Content-Type") != "application/x-test" || string(body[:k]) != "abc" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if n.Add(1)%3 == 0 {
			// Close after answering, without saying so: the client
			// finds out on its next request.
			hj, _ := w.(http.Hijacker)
			c, buf, err := hj.Hijack()
			if err == nil {
				buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				buf.Flush()
				c.Close()
			}
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	lc, err := newLeanClient(srv.URL+"/v1/predict", "application/x-test", []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	defer lc.close()
	for i := range 10 {
		status, err := lc.post()
		if err != nil || status != 200 {
			t.Fatalf("request %d: status %d, err %v", i, status, err)
		}
	}
	if n.Load() != 10 {
		t.Errorf("server answered %d requests, want 10", n.Load())
	}
	for _, bad := range []string{"https://example.com/", "http:///x", "::"} {
		if _, err := newLeanClient(bad, "", nil); err == nil {
			t.Errorf("newLeanClient(%q) accepted it", bad)
		}
	}
	if _, err := newLeanClient(srv.URL, "a\r\nX-Evil: 1", nil); err == nil {
		t.Error("a content type with a line break was accepted")
	}
}

// TestLoadReusesConnections: load tests that share one lean client, as
// the server scenario's trials do, open connections once, and never
// more than the requests they keep in flight.
func TestLoadReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Microsecond)
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	lc, err := newLeanClient(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.close()
	const inFlight = 8
	cfg := LoadConfig{Rate: 20000, Requests: 400, Duration: time.Minute, Concurrency: inFlight, Seed: 1}
	first := load(context.Background(), lc.post, cfg)
	opened := conns.Load()
	second := load(context.Background(), lc.post, cfg)
	for i, res := range []LoadResult{first, second} {
		if res.Status[200] != 400 || res.Errors != 0 {
			t.Fatalf("load %d: %v, %d errors (%v)", i, res.Status, res.Errors, res.FirstError)
		}
	}
	if opened < 1 || opened > inFlight {
		t.Errorf("the first load opened %d connections, want 1 to %d", opened, inFlight)
	}
	if got := conns.Load(); got > inFlight {
		t.Errorf("the two loads opened %d connections, more than the %d requests they keep in flight", got, inFlight)
	}
}
