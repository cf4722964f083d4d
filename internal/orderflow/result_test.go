package orderflow

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

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

// bodyByEncodingJSON is what Body wrote before it was written by hand:
// the reference it must match byte for byte.
func bodyByEncodingJSON(o Outcome) []byte {
	env := Envelope{Result: EnvelopeResult{
		ResultCode:    string(o.Code),
		ResultStatus:  string(o.Code.Status()),
		ResultMessage: truncateMessage(o.Message),
	}}
	if o.Code == Success {
		env.OrderID = o.OrderID
		env.OrderStatus = o.OrderStatus
		// distributeResult is the exception: the upstream's bytes as they
		// are, which encoding/json would compact. A placeholder stands in
		// for it, the last field, and is replaced after encoding.
		env.DistributeResult = json.RawMessage(`"distributeResult placeholder"`)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		panic(err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if o.Code == Success {
		raw := []byte(o.DistributeResult)
		if len(raw) == 0 || !json.Valid(raw) || !utf8.Valid(raw) {
			raw = []byte("[]")
		}
		placeholder := []byte(`"distributeResult placeholder"`)
		i := bytes.LastIndex(b, placeholder)
		b = append(append(b[:i:i], raw...), b[i+len(placeholder):]...)
	}
	return b
}

// TestBodyIsEncodingJSON: the envelope is byte for byte what encoding/json
// makes of it, for every code and the strings and arrays that encoders
// treat differently.
func TestBodyIsEncodingJSON(t *testing.T) {
	texts := []string{"", "success", `quote " backslash \ slash /`, "<&> html", "ctl \x00\x01\x08\x0c\n\r\t\x1f\x7f end",
		"bad utf8 \xff\xfe\xc3", "sep \u2028 \u2029", "ünïcödé 券 😀", strings.Repeat("é", 300)}
	arrays := []string{"", "[]", `[ {"a" : 1 } ]`, `[{"detailLink":"https://x.test/?a=1&b=<2>","u":"\u2028"}]`, "null", "   ", "[", `{"a":1}`, "[1,\n 2]"}
	codes := append(CodeNames(), "NOT_A_CODE", "")
	for _, code := range codes {
		for _, text := range texts {
			for _, arr := range arrays {
				o := Outcome{Code: Code(code), Message: text, OrderID: text, OrderStatus: text, DistributeResult: json.RawMessage(arr)}
				if arr == "" {
					o.DistributeResult = nil
				}
				if got, want := o.Body(), bodyByEncodingJSON(o); !bytes.Equal(got, want) {
					t.Fatalf("Body(%+v)\n got %q\nwant %q", o, got, want)
				}
			}
		}
	}
}

func FuzzBody(f *testing.F) {
	f.Add("SUCCESS", "success", "O-1", "TICKETED", []byte(`[{"sceneCode":"A"}]`))
	f.Add("PARAM_ILLEGAL", "amount.currency: \x00 \xff \u2028", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, code, msg, orderID, status string, dist []byte) {
		o := Outcome{Code: Code(code), Message: msg, OrderID: orderID, OrderStatus: status, DistributeResult: dist}
		if got, want := o.Body(), bodyByEncodingJSON(o); !bytes.Equal(got, want) {
			t.Fatalf("Body(%+v)\n got %q\nwant %q", o, got, want)
		}
	})
}

// TestStoredCode: the code of every envelope Body makes is read back as
// CodeOf reads it, and a body that does not start as Body's is left to
// CodeOf. (A body that starts as Body's but is not one, cut short say, is
// not what the replay store holds: it keeps Body's bytes whole.)
func TestStoredCode(t *testing.T) {
	for _, name := range CodeNames() {
		for _, o := range []Outcome{{Code: Code(name), Message: `m "x"`}, {Code: Code(name), OrderID: "O", DistributeResult: json.RawMessage(`[{"resultCode":"X"}]`)}} {
			body := o.Body()
			if got, want := storedCode(body), CodeOf(body); got != want || got != Code(name) {
				t.Errorf("storedCode(%s) = %s, CodeOf %s, want %s", body, got, want, name)
			}
		}
	}
	for _, body := range []string{``, `{}`, `{"result":{"resultCode":"NOPE"}}`, ` {"result":{"resultCode":"SUCCESS"}}`, `{"result":{"resultStatus":"S","resultCode":"SUCCESS"}}`} {
		if got, want := storedCode([]byte(body)), CodeOf([]byte(body)); got != want {
			t.Errorf("storedCode(%s) = %s, CodeOf %s", body, got, want)
		}
	}
}
