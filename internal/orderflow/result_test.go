package orderflow

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/message"
)

// TestCodes pins the table: every code of docs/SPEC.md §5 with its letter,
// found by name, listed sorted, and nothing else.
func TestCodes(t *testing.T) {
	want := map[string]Status{
		"SUCCESS":                      StatusSuccess,
		"METHOD_NOT_SUPPORTED":         StatusFailure,
		"MEDIA_TYPE_NOT_ACCEPTABLE":    StatusFailure,
		"INVALID_CLIENT":               StatusFailure,
		"KEY_NOT_FOUND":                StatusFailure,
		"INVALID_SIGNATURE":            StatusFailure,
		"PARAM_ILLEGAL":                StatusFailure,
		"UN_SUPPORT_BUSINESS":          StatusFailure,
		"ORDER_STATUS_INVALID":         StatusFailure,
		"UNKNOWN_EXCEPTION":            StatusUnknown,
		"REQUEST_TRAFFIC_EXCEED_LIMIT": StatusUnknown,
	}
	for name, letter := range want {
		c, ok := LookupCode(name)
		if !ok || string(c) != name || c.Status() != letter {
			t.Errorf("LookupCode(%q) = %q %v, status %q; want status %q", name, c, ok, c.Status(), letter)
		}
	}
	for _, name := range []string{"", "success", "NOPE", "SUCCESS "} {
		if c, ok := LookupCode(name); ok {
			t.Errorf("LookupCode(%q) = %q, want no code", name, c)
		}
		if s := Code(name).Status(); s != "" {
			t.Errorf("Code(%q).Status() = %q, want none", name, s)
		}
	}
	names := CodeNames()
	if len(names) != len(want) || !slices.IsSorted(names) {
		t.Errorf("CodeNames() = %v, want the %d codes sorted", names, len(want))
	}
	names[0] = "changed"
	if CodeNames()[0] == "changed" {
		t.Error("CodeNames shares its slice with callers")
	}
}

func TestEnvelopeBody(t *testing.T) {
	o := Outcome{Code: Success, Message: "success", OrderID: "O", OrderStatus: "TICKETED"}
	if got := string(o.Body()); got != `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},"orderId":"O","orderStatus":"TICKETED","distributeResult":[]}` {
		t.Errorf("SUCCESS envelope = %s", got)
	}
	dist := Outcome{Code: Success, Message: "success", OrderID: "O", OrderStatus: "T", DistributeResult: json.RawMessage(`[{"extInfo":{"detailLink":"https://x.test/?a=1&b=<2>"}}]`)}
	if got := string(dist.Body()); !strings.Contains(got, `"distributeResult":[{"extInfo":{"detailLink":"https://x.test/?a=1&b=<2>"}}]`) {
		t.Errorf("distributeResult not carried byte for byte (no HTML escaping): %s", got)
	}
	f := Outcome{Code: ParamIllegal, Message: strings.Repeat("é", 300), OrderID: "leak", OrderStatus: "leak", DistributeResult: json.RawMessage(`["leak"]`)}
	got := f.Body()
	if strings.Contains(string(got), "leak") || !json.Valid(got) {
		t.Errorf("F envelope = %s", got)
	}
	var env Envelope
	if err := json.Unmarshal(got, &env); err != nil {
		t.Fatal(err)
	}
	if env.Result.ResultCode != "PARAM_ILLEGAL" || env.Result.ResultStatus != "F" {
		t.Errorf("F envelope result = %+v", env.Result)
	}
	if n := len(env.Result.ResultMessage); n > message.MaxResultMessageLen || n < message.MaxResultMessageLen-1 {
		t.Errorf("message of %d bytes, want the cap of %d cut on a rune boundary", n, message.MaxResultMessageLen)
	}
	bad := Outcome{Code: Success, OrderID: "O", DistributeResult: json.RawMessage(`[`)}
	if got := bad.Body(); !json.Valid(got) || !strings.Contains(string(got), `"distributeResult":[]`) {
		t.Errorf("a malformed distributeResult gave %s, want a valid envelope with []", got)
	}
}

func TestCodeOf(t *testing.T) {
	for _, c := range []Code{Success, ParamIllegal, UnknownException, RequestTrafficExceedLimit} {
		if got := CodeOf(Outcome{Code: c, OrderID: "O"}.Body()); got != c {
			t.Errorf("CodeOf(envelope of %s) = %s", c, got)
		}
	}
	for _, body := range []string{``, `{}`, `not json`, `{"result":{"resultCode":"NOPE","resultStatus":"S"}}`} {
		if got := CodeOf([]byte(body)); got != UnknownException {
			t.Errorf("CodeOf(%q) = %s, want UNKNOWN_EXCEPTION", body, got)
		}
	}
}
