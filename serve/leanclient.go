package serve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// leanClient sends the same POST over keep-alive HTTP/1.1 connections
// and reads only the status of each answer: Load's default sender.
//
// It is written here, not taken from net/http, because a load generator
// must cost little beside the server it measures: on the same cores,
// net/http's client spends about as much CPU per request as the server
// (request and header maps, a transport goroutine per connection,
// channel hand-offs), which made a measured server look half as fast as
// it is. Like wrk, it speaks only what a load test needs: one prepared
// request written in one call, answers with Content-Length or chunked
// bodies, keep-alive unless the server says "Connection: close".
type leanClient struct {
	addr    string
	request []byte // the whole request: line, headers and body
	timeout time.Duration

	mu   sync.Mutex
	idle []*leanConn
}

type leanConn struct {
	c net.Conn
	r *bufio.Reader
}

// newLeanClient prepares POSTs of body to rawURL, an http:// URL.
func newLeanClient(rawURL, contentType string, body []byte) (*leanClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%q: the load generator speaks plain http:// to a host", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: distill-load\r\nContent-Length: %d\r\n", path, u.Host, len(body))
	if contentType != "" {
		if strings.ContainsAny(contentType, "\r\n") {
			return nil, fmt.Errorf("content type %q holds a line break", contentType)
		}
		fmt.Fprintf(&b, "Content-Type: %s\r\n", contentType)
	}
	b.WriteString("\r\n")
	b.Write(body)
	return &leanClient{addr: addr, request: b.Bytes(), timeout: time.Minute}, nil
}

// post sends the request and returns the answer's status code. A
// connection kept from an earlier request that the server has closed
// meanwhile is replaced once, as net/http's transport does when nothing
// of the answer arrived.
func (lc *leanClient) post() (int, error) {
	conn, reused, err := lc.get()
	if err != nil {
		return 0, err
	}
	status, keep, err := lc.roundTrip(conn)
	if err != nil && reused && errors.Is(err, errNoAnswer) {
		conn.c.Close()
		if conn, err = lc.dial(); err != nil {
			return 0, err
		}
		status, keep, err = lc.roundTrip(conn)
	}
	if err != nil || !keep {
		conn.c.Close()
		return status, err
	}
	lc.put(conn)
	return status, nil
}

// errNoAnswer: the connection ended before the first byte of an answer.
var errNoAnswer = errors.New("connection closed before an answer")

func (lc *leanClient) get() (*leanConn, bool, error) {
	lc.mu.Lock()
	if n := len(lc.idle); n > 0 {
		c := lc.idle[n-1]
		lc.idle = lc.idle[:n-1]
		lc.mu.Unlock()
		return c, true, nil
	}
	lc.mu.Unlock()
	c, err := lc.dial()
	return c, false, err
}

func (lc *leanClient) dial() (*leanConn, error) {
	c, err := net.DialTimeout("tcp", lc.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &leanConn{c: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

func (lc *leanClient) put(c *leanConn) {
	lc.mu.Lock()
	lc.idle = append(lc.idle, c)
	lc.mu.Unlock()
}

// close closes the idle connections.
func (lc *leanClient) close() {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for _, c := range lc.idle {
		c.c.Close()
	}
	lc.idle = nil
}

// roundTrip writes the request on c and reads one answer; keep says
// whether c may carry another request.
func (lc *leanClient) roundTrip(c *leanConn) (status int, keep bool, err error) {
	c.c.SetDeadline(time.Now().Add(lc.timeout))
	if _, err := c.c.Write(lc.request); err != nil {
		return 0, false, fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	for {
		status, keep, err = readAnswer(c.r)
		// 1xx answers are interim; the real one follows.
		if err != nil || status >= 200 {
			return status, keep, err
		}
	}
}

// readAnswer reads an HTTP/1.1 response from r, discarding its body, and
// returns its status and whether the connection stays open.
func readAnswer(r *bufio.Reader) (status int, keep bool, err error) {
	line, err := readLine(r)
	if err != nil {
		// A kept connection the server closed gives EOF or, when the
		// request reached the closed socket first, a reset: either way
		// nothing was answered and a new connection may retry.
		if line == "" && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return 0, false, errNoAnswer
		}
		return 0, false, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err = strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/1.") || err != nil || status < 100 || status > 999 {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	keep = proto != "HTTP/1.0"
	length, chunked := int64(-1), false
	for {
		h, err := readLine(r)
		if err != nil {
			return status, false, err
		}
		if h == "" {
			break
		}
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return status, false, fmt.Errorf("malformed header line %q", h)
		}
		v = strings.TrimSpace(v)
		switch {
		case strings.EqualFold(k, "Content-Length"):
			if length, err = strconv.ParseInt(v, 10, 64); err != nil || length < 0 {
				return status, false, fmt.Errorf("malformed Content-Length %q", v)
			}
		case strings.EqualFold(k, "Transfer-Encoding"):
			chunked = strings.EqualFold(v, "chunked")
		case strings.EqualFold(k, "Connection"):
			keep = keep && !strings.EqualFold(v, "close")
		}
	}
	switch {
	case status < 200 || status == 204 || status == 304:
		return status, keep, nil
	case chunked:
		return status, keep, discardChunked(r)
	case length >= 0:
		_, err := r.Discard(int(length))
		return status, keep && err == nil, err
	default:
		// The body runs to the end of the connection.
		_, err := io.Copy(io.Discard, r)
		return status, false, err
	}
}

// readLine reads one CRLF- (or LF-) terminated line without its end.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", errors.New("header line longer than 4 KiB")
		}
		return string(b), err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// discardChunked reads a chunked body and its trailers.
func discardChunked(r *bufio.Reader) error {
	for {
		line, err := readLine(r)
		if err != nil {
			return err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			for {
				t, err := readLine(r)
				if err != nil || t == "" {
					return err
				}
			}
		}
		if _, err := r.Discard(int(n)); err != nil {
			return err
		}
		if l, err := readLine(r); err != nil || l != "" {
			return fmt.Errorf("chunk of %d bytes not followed by CRLF", n)
		}
	}
}
