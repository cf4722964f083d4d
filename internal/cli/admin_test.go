package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/internal/adminapi"
)

// fakeAdmin stands in for Caddy's admin endpoint on the CLI client side only;
// the real routes are tested end to end elsewhere.
func fakeAdmin(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("admin: method %s", r.Method)
		}
		q := r.URL.Query()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/alipay_order_sync/order" && q.Get("client_id") == "C 1&x" && q.Get("merchant_biz_no") == "B/2+=?#":
			json.NewEncoder(w).Encode(adminapi.OrderView{ClientID: "C 1&x", MerchantBizNo: "B/2+=?#", Scenario: "gift_card", Status: "TICKETED", OrderID: "o1"})
		case r.URL.Path == "/alipay_order_sync/request" && q.Get("client_id") == "C" && q.Get("request_id") == "r 1":
			json.NewEncoder(w).Encode(adminapi.RequestView{ClientID: "C", RequestID: "r 1", State: "done", Reply: json.RawMessage(`{"result":{"resultCode":"SUCCESS"}}`)})
		case q.Get("client_id") == "down":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"state store: down"}`)
		case r.URL.Path == "/alipay_order_sync/order":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"no such order"}`+"\n")
		case r.URL.Path == "/alipay_order_sync/request":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"no such request"}`+"\n")
		default:
			t.Errorf("admin: unexpected %s", r.URL)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestCommandOrder(t *testing.T) {
	addr := fakeAdmin(t)
	out, _, err := run(t, "", "order", "--admin", addr, "--client-id", "C 1&x", "--merchant-biz-no", "B/2+=?#")
	if err != nil {
		t.Fatal(err)
	}
	var v adminapi.OrderView
	if json.Unmarshal([]byte(out), &v) != nil || v.OrderID != "o1" || v.Status != "TICKETED" || !strings.Contains(out, "\n  \"clientId\"") {
		t.Fatalf("output:\n%s", out)
	}
	// A URL works as --admin too.
	if _, _, err = run(t, "", "order", "--admin", "http://"+addr+"/", "--client-id", "C 1&x", "--merchant-biz-no", "B/2+=?#"); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, "", "order", "--admin", addr, "--client-id", "C", "--merchant-biz-no", "unknown")
	if err == nil || err.Error() != "no such order" {
		t.Fatalf("unknown order: err = %v", err)
	}
}

func TestCommandRequest(t *testing.T) {
	addr := fakeAdmin(t)
	out, _, err := run(t, "", "request", "--admin", addr, "--client-id", "C", "--request-id", "r 1")
	if err != nil || !strings.Contains(out, `"state": "done"`) || !strings.Contains(out, `"resultCode": "SUCCESS"`) {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	_, _, err = run(t, "", "request", "--admin", addr, "--client-id", "C", "--request-id", "r2")
	if err == nil || err.Error() != "no such request" {
		t.Fatalf("unknown request: err = %v", err)
	}
}

func TestCommandAdminErrors(t *testing.T) {
	addr := fakeAdmin(t)
	cmd := []string{"order", "--client-id", "C", "--merchant-biz-no", "B"}
	if _, _, err := run(t, "", append(cmd, "--admin", "https://"+addr)...); err == nil || !strings.Contains(err.Error(), "--admin") {
		t.Fatalf("https admin: err = %v", err)
	}
	if _, _, err := run(t, "", "order", "--admin", addr, "--client-id", "", "--merchant-biz-no", "B"); err == nil || !strings.Contains(err.Error(), "--client-id") {
		t.Fatalf("empty --client-id: err = %v", err)
	}
	if _, _, err := run(t, "", "request", "--admin", addr, "--client-id", "C"); err == nil || !strings.Contains(err.Error(), "request-id") {
		t.Fatalf("missing --request-id: err = %v", err)
	}
	// Nothing listening: say where we looked.
	l := httptest.NewServer(http.NotFoundHandler())
	dead := strings.TrimPrefix(l.URL, "http://")
	l.Close()
	_, _, err := run(t, "", append(cmd, "--admin", dead)...)
	if err == nil || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "--admin") {
		t.Fatalf("dead admin: err = %v", err)
	}
	// Any other admin failure is reported with its status and message.
	_, _, err = run(t, "", "order", "--admin", addr, "--client-id", "down", "--merchant-biz-no", "B")
	if err == nil || !strings.Contains(err.Error(), "HTTP 503: state store: down") {
		t.Fatalf("503: err = %v", err)
	}
}
