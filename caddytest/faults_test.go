package caddytest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// rawUpstream is an issuing backend that writes whatever bytes a test
// chooses on the TCP connection, so that it can break HTTP itself: a body
// shorter than its Content-Length, a chunked body that never ends, bytes
// that are not UTF-8. The reply is chosen per request by merchantBizNo.
type rawUpstream struct {
	ln      net.Listener
	mu      sync.Mutex
	replies map[string]func(net.Conn)
	calls   map[string]int
	bodies  map[string][]byte // last body per merchantBizNo
}

func newRawUpstream(t testing.TB) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, replies: map[string]func(net.Conn){}, calls: map[string]int{}, bodies: map[string][]byte{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(conn)
		}
	}()
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

// on sets the raw reply for requests about merchantBizNo.
func (u *rawUpstream) on(merchantBizNo string, reply func(net.Conn)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.replies[merchantBizNo] = reply
}

func (u *rawUpstream) count(merchantBizNo string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[merchantBizNo]
}

func (u *rawUpstream) last(merchantBizNo string) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bodies[merchantBizNo]
}

// serve answers one request per connection and closes it: whatever the
// reply did to the stream, the next request starts clean.
func (u *rawUpstream) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		return
	}
	body, _ := io.ReadAll(req.Body)
	var o struct{ MerchantBizNo string }
	_ = json.Unmarshal(body, &o)
	u.mu.Lock()
	reply := u.replies[o.MerchantBizNo]
	u.calls[o.MerchantBizNo]++
	u.bodies[o.MerchantBizNo] = body
	u.mu.Unlock()
	if reply == nil {
		_, _ = io.WriteString(conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	reply(conn)
}

// writeRaw returns a reply that writes s as is and closes the connection.
func writeRaw(s string) func(net.Conn) {
	return func(c net.Conn) { _, _ = io.WriteString(c, s) }
}

// resetAfter writes s, then resets the connection (RST, not FIN).
func resetAfter(s string) func(net.Conn) {
	return func(c net.Conn) {
		_, _ = io.WriteString(c, s)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
}

// okReply is a well-formed 200 with body and a matching Content-Length.
func okReply(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// TestBrokenUpstreamRepliesAreNeverSuccess (issue 9 items 4 and 5): a reply
// cut short, aborted or not UTF-8 is UNKNOWN_EXCEPTION, never SUCCESS and
// never a signed envelope that is not UTF-8 JSON; nothing is stored, so a
// retry against a healed upstream is processed afresh.
func TestBrokenUpstreamRepliesAreNeverSuccess(t *testing.T) {
	up := newRawUpstream(t)
	in := gateway{upstream: up.addr(), options: "upstream_timeout 5s"}.start(t)
	const complete = `{"orderId":"O-1","distributeResult":[{"sceneCode":"PASS"}]}`
	faults := []struct {
		name  string
		reply func(net.Conn)
	}{
		// Item 4: the body is a complete JSON success, but the HTTP
		// message around it is not complete.
		{"Content-Length larger than sent, then close", writeRaw(fmt.Sprintf(
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(complete)+100, complete))},
		{"chunked body without its last chunk, then close", writeRaw(fmt.Sprintf(
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(complete), complete))},
		{"reset after a complete JSON body but short of Content-Length", resetAfter(fmt.Sprintf(
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(complete)+1, complete))},
		{"reset right after the status line", resetAfter("HTTP/1.1 200 OK\r\n")},
		{"close before any byte", writeRaw("")},
		{"not HTTP", writeRaw("{\"orderId\":\"O-1\"}\r\n\r\n")},
		// Item 5: well-formed HTTP, but the bytes are not UTF-8.
		{"invalid UTF-8 in distributeResult", writeRaw(okReply(`{"orderId":"O-1","distributeResult":[{"sceneCode":"P` + "\xff\xfe" + `"}]}`))},
		{"invalid UTF-8 in orderId", writeRaw(okReply(`{"orderId":"O-` + "\xc3\x28" + `"}`))},
		{"invalid UTF-8 in a flat success", writeRaw(okReply(`{"orderId":"O-1","benefitId":"B-` + "\xed\xa0\x80" + `"}`))},
		{"invalid UTF-8 in resultMessage", writeRaw(okReply(`{"resultCode":"PARAM_ILLEGAL","resultMessage":"` + "\x80" + `"}`))},
		{"invalid UTF-8 outside the fields read", writeRaw(okReply(`{"orderId":"O-1","distributeResult":[],"note":"` + "\xff" + `"}`))},
	}
	falseS := 0
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			o := newOrder()
			biz := o["merchantBizNo"].(string)
			up.on(biz, f.reply)
			a := send(t, in.url(), signed(t, o.bytes()))
			if !utf8.Valid(a.body) || !json.Valid(a.body) {
				t.Errorf("the envelope is not UTF-8 JSON: %q", a.body)
			}
			if a.env.Result.ResultCode == "SUCCESS" {
				falseS++
			}
			a.expect(t, "UNKNOWN_EXCEPTION", "U")
			sdkVerifies(t, a, demoKeys(t).gatewayPublic)
			if up.count(biz) != 1 {
				t.Errorf("the upstream was called %d times", up.count(biz))
			}

			// Nothing was stored: the same bytes are processed afresh and
			// the order has no previous status.
			up.on(biz, writeRaw(okReply(complete)))
			send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
			var fwd struct{ PreviousStatus string }
			_ = json.Unmarshal(up.last(biz), &fwd)
			if up.count(biz) != 2 || fwd.PreviousStatus != "" {
				t.Errorf("retry: upstream calls %d, previousStatus %q; the broken reply left state behind", up.count(biz), fwd.PreviousStatus)
			}
		})
	}
	t.Logf("figures: faults injected %d, false S %d", len(faults), falseS)
}
