package caddytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// received is one request the fake upstream saw.
type received struct {
	method string
	path   string
	query  string // the raw query, "" when there was none
	uri    string // the request target as sent
	header http.Header
	body   []byte
}

// fakeUpstream is the issuing backend of a test: it records what it gets
// and answers with whatever the test's reply function says.
type fakeUpstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	got   []received
	calls atomic.Int64
	reply func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newUpstream(t testing.TB, reply func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{reply: reply}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.calls.Add(1)
		u.mu.Lock()
		u.got = append(u.got, received{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, uri: r.RequestURI, header: r.Header.Clone(), body: body})
		u.mu.Unlock()
		u.reply(w, r, body)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// addr is host:port for reverse_proxy.
func (u *fakeUpstream) addr() string { return u.srv.Listener.Addr().String() }

func (u *fakeUpstream) last(t testing.TB) received {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) == 0 {
		t.Fatal("the upstream was not called")
	}
	return u.got[len(u.got)-1]
}

func (u *fakeUpstream) count() int { return int(u.calls.Load()) }

// jsonReply answers with a fixed status and JSON body.
func jsonReply(status int, body string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

const alipaySuccess = `{"orderId":"2220100101001","distributeResult":[{"sceneCode":"PASS","extInfo":{"benefitId":"B-1","detailLink":"alipayhk://x"}}]}`
