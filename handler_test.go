package ordersync

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

func TestMaskHidesUserIDs(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"1234":             "****",
		"12345678":         "****",
		"2160220041431868": "21****68",
		"用户标识符号码很长的":       "用户****长的",
	} {
		if got := mask(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// rawHeaderBlock serves one reply written by write and returns the header
// block exactly as it crossed the wire (HTTP/1.1).
func rawHeaderBlock(t *testing.T, write func(http.ResponseWriter)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { write(w) }))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	all, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	head, _, ok := strings.Cut(string(all), "\r\n\r\n")
	if !ok {
		t.Fatalf("no header block in %q", all)
	}
	return head
}

// TestReplayOfCanonicalRecordGoesOutLowercase (issue 9 item 1): replies
// stored by earlier versions carry canonical header names (Response-Time);
// replayed, they go out under the lowercase wire names, once each.
func TestReplayOfCanonicalRecordGoesOutLowercase(t *testing.T) {
	legacy := store.Reply{Status: http.StatusOK, Body: []byte(`{}`), Header: map[string][]string{
		"Content-Type":  {"application/json; charset=UTF-8"},
		"Response-Time": {"2025-01-01T00:00:00.000Z"},
		"Client-Id":     {"C"},
		"Signature":     {"algorithm=RSA256,keyVersion=1,signature=x"},
	}}
	head := rawHeaderBlock(t, func(w http.ResponseWriter) {
		w.Header().Set("Tracer-Id", "stale") // set earlier under the canonical name
		writeReply(w, legacy, "abc")
	})
	for _, line := range []string{
		"\r\nresponse-time: 2025-01-01T00:00:00.000Z\r\n",
		"\r\nclient-id: C\r\n",
		"\r\nsignature: algorithm=RSA256,keyVersion=1,signature=x\r\n",
		"\r\ntracer-id: abc\r\n",
		"\r\nContent-Type: application/json; charset=UTF-8\r\n",
	} {
		if !strings.Contains(head+"\r\n", line) {
			t.Errorf("header block lacks %q:\n%s", strings.TrimSpace(line), head)
		}
	}
	for _, canonical := range []string{"Response-Time:", "Client-Id:", "Signature:", "Tracer-Id:"} {
		if strings.Contains(head, "\r\n"+canonical) {
			t.Errorf("header block has %q:\n%s", canonical, head)
		}
	}
}

// TestReadAll: the body read is what arrived, whatever Content-Length
// announced (it only sizes the buffer).
func TestReadAll(t *testing.T) {
	body := strings.Repeat("0123456789", 100)
	for _, size := range []int64{-1, 0, 1, 999, 1000, 1001, 5000} {
		got, err := readAll(strings.NewReader(body), size)
		if err != nil || string(got) != body {
			t.Errorf("size %d: %d bytes, %v; want the %d bytes", size, len(got), err, len(body))
		}
	}
	if _, err := readAll(iotest.ErrReader(errors.New("broken")), 10); err == nil || err.Error() != "broken" {
		t.Errorf("a failing body: %v", err)
	}
}
