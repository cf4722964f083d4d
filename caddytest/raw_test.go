package caddytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
)

// Raw HTTP/1.1 over a plain connection: net/http canonicalizes header names
// on both ends, so what a case-sensitive SDK sees, and requests with
// repeated headers, are only visible and possible at this level.

// rawHeader is one header line exactly as written.
type rawHeader struct{ name, value string }

// rawRequest renders a signed request for c as HTTP/1.1 bytes. The signed
// headers come first, then extra lines verbatim (repeats included); target
// is the request target, default the signed path.
func rawRequest(t testing.TB, in *instance, c call, target string, extra ...rawHeader) []byte {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	if target == "" {
		target = signedPathOf(c)
	}
	ct := c.contentType
	if ct == "" {
		ct = "application/json; charset=UTF-8"
	}
	rt := c.requestTime
	if rt == "" {
		rt = fmt.Sprint(time.Now().UnixMilli())
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n", method, target, in.port)
	fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", ct, len(c.body))
	if c.clientID != "" {
		fmt.Fprintf(&b, "Client-Id: %s\r\n", c.clientID)
	}
	fmt.Fprintf(&b, "Request-Time: %s\r\n", rt)
	if c.key != nil {
		kv := c.keyVersion
		if kv == "" {
			kv = "1"
		}
		sig, err := signature.Sign(c.key, method, signedPathOf(c), c.clientID, rt, c.body)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "Signature: %s\r\n", signature.FormatHeader(kv, sig))
	}
	for _, h := range extra {
		fmt.Fprintf(&b, "%s: %s\r\n", h.name, h.value)
	}
	b.WriteString("\r\n")
	b.Write(c.body)
	return b.Bytes()
}

// rawAnswer is a reply read off the wire.
type rawAnswer struct {
	head    string      // status line and header lines, as sent
	headers []rawHeader // the header lines, names as sent
	body    []byte      // decoded (chunked or not)
	env     envelope
}

// get returns the value of the header whose name is exactly name, as a
// case-sensitive reader would find it, and how many lines have that name.
func (a rawAnswer) get(name string) (string, int) {
	var v string
	n := 0
	for _, h := range a.headers {
		if h.name == name {
			if n == 0 {
				v = h.value
			}
			n++
		}
	}
	return v, n
}

// rawExchange writes raw on a new connection to the gateway and reads the
// whole reply (the request says Connection: close).
func rawExchange(t testing.TB, in *instance, raw []byte) rawAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the reply: %v (got %q)", err, all)
	}
	return parseRawReply(t, all)
}

func parseRawReply(t testing.TB, all []byte) rawAnswer {
	t.Helper()
	end := bytes.Index(all, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatalf("no end of headers in %q", all)
	}
	a := rawAnswer{head: string(all[:end])}
	for _, line := range strings.Split(a.head, "\r\n")[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("malformed header line %q", line)
		}
		a.headers = append(a.headers, rawHeader{name, strings.TrimSpace(value)})
	}
	// net/http decodes the body (Content-Length or chunked); only the
	// header names are taken from the raw bytes.
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(all)), nil)
	if err != nil {
		t.Fatalf("reply is not HTTP: %v: %q", err, all)
	}
	defer resp.Body.Close()
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("reply body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HTTP status %d, want 200: %q", resp.StatusCode, all)
	}
	if err := json.Unmarshal(a.body, &a.env); err != nil {
		t.Fatalf("reply is not an envelope: %v: %s", err, a.body)
	}
	return a
}
