package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-alipay/ordersync/internal/adminapi"
)

// fakePushAdmin stands in for the egress admin routes on the CLI client
// side only (the real routes run end to end in caddytest). It records the
// requests it got, as method and escaped path with query.
func fakePushAdmin(t *testing.T) (addr string, got func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		entry := adminapi.PushEntryView{ClientID: "C/1", RequestID: "r 1", MerchantBizNo: "B&1", State: "queued"}
		switch p := r.URL.EscapedPath(); {
		case p == "/alipay_order_push/entries/C%2F1":
			enc(w).Encode(adminapi.PushListView{ClientID: "C/1", Entries: []adminapi.PushEntryView{entry}})
		case p == "/alipay_order_push/entry/C%2F1/r%201" && r.Method == http.MethodGet:
			enc(w).Encode(entry)
		case p == "/alipay_order_push/lane/C%2F1/B&1":
			enc(w).Encode(adminapi.PushLaneView{ClientID: "C/1", MerchantBizNo: "B&1", Version: 3, Queued: []adminapi.PushEntryView{entry}})
		case p == "/alipay_order_push/entry/C%2F1/r%201/drop" && r.Method == http.MethodPost:
			entry.State, entry.LastError = "failed", "dropped by operator"
			enc(w).Encode(adminapi.PushActionView{Action: "drop", Changed: "entry r 1 was queued; it is failed now", Entry: entry})
		case p == "/alipay_order_push/entry/C%2F1/done/retry":
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"error":"retry done: nothing changed: outbox entry is not in a state that allows this: succeeded"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"`+adminapi.NoSuchEntry+`"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// enc encodes as the admin routes do: no HTML escaping.
func enc(w io.Writer) *json.Encoder {
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	return e
}

func TestCommandOutbox(t *testing.T) {
	addr, got := fakePushAdmin(t)

	out, _, err := run(t, "", "outbox", "list", "--admin", addr, "--client-id", "C/1", "--state", "queued", "--limit", "5")
	if err != nil || !strings.Contains(out, `"requestId": "r 1"`) {
		t.Fatalf("list: err %v, output:\n%s", err, out)
	}
	out, _, err = run(t, "", "outbox", "show", "--admin", addr, "--client-id", "C/1", "--request-id", "r 1")
	if err != nil || !strings.Contains(out, `"merchantBizNo": "B&1"`) {
		t.Fatalf("show entry: err %v, output:\n%s", err, out)
	}
	out, _, err = run(t, "", "outbox", "show", "--admin", addr, "--client-id", "C/1", "--merchant-biz-no", "B&1")
	if err != nil || !strings.Contains(out, `"version": 3`) {
		t.Fatalf("show lane: err %v, output:\n%s", err, out)
	}
	// drop says what it changed, then the entry.
	out, _, err = run(t, "", "outbox", "drop", "--admin", addr, "--client-id", "C/1", "--request-id", "r 1")
	if err != nil || !strings.HasPrefix(out, "entry r 1 was queued; it is failed now\n{") || !strings.Contains(out, `"lastError": "dropped by operator"`) {
		t.Fatalf("drop: err %v, output:\n%s", err, out)
	}
	// A refused action is an error saying why; an unknown entry is "no such outbox entry".
	_, _, err = run(t, "", "outbox", "retry", "--admin", addr, "--client-id", "C/1", "--request-id", "done")
	if err == nil || !strings.Contains(err.Error(), "HTTP 409") || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("refused retry: err = %v", err)
	}
	_, _, err = run(t, "", "outbox", "retry", "--admin", addr, "--client-id", "C/1", "--request-id", "nope")
	if err == nil || err.Error() != adminapi.NoSuchEntry {
		t.Fatalf("unknown entry: err = %v", err)
	}

	want := []string{
		"GET /alipay_order_push/entries/C%2F1?limit=5&state=queued",
		"GET /alipay_order_push/entry/C%2F1/r%201",
		"GET /alipay_order_push/lane/C%2F1/B&1",
		"POST /alipay_order_push/entry/C%2F1/r%201/drop",
		"POST /alipay_order_push/entry/C%2F1/done/retry",
		"POST /alipay_order_push/entry/C%2F1/nope/retry",
	}
	if g := got(); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("admin requests:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}

	// Flag mistakes are caught before asking.
	for _, args := range [][]string{
		{"outbox", "show", "--admin", addr, "--client-id", "C"},
		{"outbox", "show", "--admin", addr, "--client-id", "C", "--request-id", "r", "--merchant-biz-no", "b"},
		{"outbox", "list", "--admin", addr, "--client-id", "C", "--state", "done"},
		{"outbox", "drop", "--admin", addr, "--client-id", "C"},
	} {
		if _, _, err := run(t, "", args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if _, _, err := run(t, "", "outbox", "lsit"); err == nil || !strings.Contains(err.Error(), "did you mean list?") {
		t.Errorf("typo: err = %v", err)
	}
}
