package orderflow

import (
	"context"
	"fmt"
	"net/http"
	"testing"
)

// benchUpstreamReply is what the load tool's upstream answers.
var benchUpstreamReply = []byte(`{"orderId":"ORD-1234567","distributeResult":[]}`)

// BenchmarkMapReply turns the upstream's reply into the outcome (README,
// "The upstream contract"): the Alipay shape with an orderId, and the flat
// shape.
func BenchmarkMapReply(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"alipay", string(benchUpstreamReply)},
		{"flat", `{"orderId":"ORD-1234567","benefitId":"B-1","detailLink":"https://example.com/d/1","sceneCode":"PASS"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			up := UpstreamReply{Status: http.StatusOK, Body: []byte(bc.body)}
			b.ReportAllocs()
			for b.Loop() {
				if o, _ := MapReply(up, "TICKETED", nil); o.Code != Success {
					b.Fatalf("MapReply: %v", o.Code)
				}
			}
		})
	}
}

// BenchmarkReply builds the SUCCESS envelope the caller gets, without and
// with sign_responses: the signed case is the RSA-2048 signature the
// signing bound of bench/loadtest measures, plus the envelope.
func BenchmarkReply(b *testing.B) {
	o := Outcome{Code: Success, Message: "success", OrderID: "ORD-1234567", OrderStatus: "TICKETED"}
	signed := newHarness(b).flow.cfg.Signer
	for _, bc := range []struct {
		name string
		s    *Signer
	}{{"unsigned", nil}, {"signed", signed}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rep, err := bc.s.reply(http.MethodPost, syncPath, "BENCH-CLIENT", o)
				if err != nil || len(rep.Body) == 0 || (bc.s != nil) != (len(rep.Header[HeaderSignature]) == 1) {
					b.Fatalf("reply: %v %q %v", err, rep.Body, rep.Header)
				}
			}
		})
	}
}

// BenchmarkServe is the whole flow in-process, without its RSA operations
// (signature's benchmarks measure those: here the caller is let in by
// insecure_skip_verify and replies are not signed), with a real bbolt file
// and a forwarder that answers at once: a first-time sync (claim, lock,
// read, forward, commit with its fsync) and a replay of a stored answer.
func BenchmarkServe(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.InsecureSkipVerify, c.Signer = true, nil })
	h.up.answer(func(Upstream) UpstreamReply { return UpstreamReply{Status: http.StatusOK, Body: benchUpstreamReply} })
	request := func(body []byte) *Request {
		return &Request{Method: http.MethodPost, Path: syncPath, Body: body, Header: http.Header{
			"Content-Type": {"application/json; charset=UTF-8"},
			"Client-Id":    {testClient},
		}}
	}
	ctx := context.Background()
	b.Run("first-time", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			n++
			o := order{requestID: fmt.Sprintf("BENCH-%d", n), bizNo: fmt.Sprintf("BENCH-B-%d", n), status: "TICKETED", modify: 1742977506708}
			if a := h.flow.Serve(ctx, request(o.body()), h.up); a.Code != Success || a.Replay {
				b.Fatalf("%s: %s", a.Code, a.Reply.Body)
			}
		}
	})
	b.Run("replay", func(b *testing.B) {
		body := newOrder("TICKETED").body()
		if a := h.flow.Serve(ctx, request(body), h.up); a.Code != Success {
			b.Fatalf("%s: %s", a.Code, a.Reply.Body)
		}
		b.ReportAllocs()
		for b.Loop() {
			if a := h.flow.Serve(ctx, request(body), h.up); !a.Replay {
				b.Fatalf("not a replay: %s", a.Reply.Body)
			}
		}
	})
}
