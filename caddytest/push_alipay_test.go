package caddytest

// alipayStandIn plays AlipayHK's order-sync endpoint for the egress tests.
// It checks every attempt the way AlipayHK does (path, Client-Id,
// Request-Time in epoch milliseconds, the merchant's RSA256 signature over
// the raw body), records every attempt per merchantBizNo in arrival order,
// and answers each one by a script: a signed S/F/U envelope, or a fault.
//
// API (all methods are safe for concurrent use):
//
//	a := newAlipayStandIn(t)        // listens on 127.0.0.1:0 until the test ends
//	a.addr()                         // host:port for reverse_proxy
//	a.script(key, steps...)          // key: a requestId or a merchantBizNo; the
//	                                 // steps answer its attempts in turn, the last
//	                                 // one sticks; a requestId's script wins
//	a.setDefault(step)               // answer of everything unscripted (default ahkS)
//	a.setKeyVersion("2")             // attempts must carry keyVersion=2 (default: any)
//	a.setReplay(true)                // real AlipayHK: a requestId decided S or F
//	                                 // before gets that answer again, byte for byte,
//	                                 // headers included; another body gets F
//	                                 // PARAM_ILLEGAL
//	a.release()                      // lets every ahkHold answer (now and later)
//	a.closeListener() / a.reopen()   // connection refused / back on the same port
//	a.lane(bizNo), a.attemptsOf(id), a.all()   // what arrived, in arrival order
//	a.settledAttemptsOf(t, id)       // attemptsOf once their handlers returned
//	a.finalReply(t, id)              // the S/F envelope bytes last sent for id
//	a.checkWellFormed(t, ids...)     // every attempt of ids was well-formed
//	a.overlaps()                     // lanes that ever had two attempts in flight
//	a.snapshot(keep)                 // the records keep selects
//
// A record (ahkAttempt) has the arrival time, requestId, merchantBizNo,
// orderStatus, headers, body bytes, X-Egress-Instance (set by a test's
// reverse_proxy to tell instances apart), the step that answered it, the
// envelope written, whether a verified S reached a caller still there
// (answeredS), and problem: why AlipayHK would refuse the attempt ("" when
// it is well-formed; such attempts get F INVALID_SIGNATURE).
//
// Steps: ahkS, ahkF(code), ahkU, ahkTrafficLimit (U
// REQUEST_TRAFFIC_EXCEED_LIMIT), ahkHang (no answer until the caller gives up),
// ahk5xx (HTTP 503), ahk429 (HTTP 429), ahkReset (TCP RST instead of an answer),
// ahkUnsigned (an S envelope without signature headers), ahkUnsignedF,
// ahkWrongKey (an S envelope signed with another key), ahkTruncated
// (Content-Length larger than what is sent, then close), ahkHold (decided S on
// arrival, the answer held until release() or the caller leaves), and any step
// .after(d) to answer late. ahkTimes(n, step) repeats a step.

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
)

type ahkKind int

const (
	ahkKindS ahkKind = iota
	ahkKindF
	ahkKindU
	ahkKindTrafficLimit
	ahkKindHang
	ahkKind5xx
	ahkKind429
	ahkKindReset
	ahkKindUnsigned
	ahkKindUnsignedF
	ahkKindWrongKey
	ahkKindTruncated
	ahkKindHold
)

var ahkKindNames = map[ahkKind]string{
	ahkKindS: "S", ahkKindF: "F", ahkKindU: "U", ahkKindTrafficLimit: "traffic-limit", ahkKindHang: "hang",
	ahkKind5xx: "5xx", ahkKind429: "429", ahkKindReset: "reset", ahkKindUnsigned: "unsigned-S",
	ahkKindUnsignedF: "unsigned-F", ahkKindWrongKey: "wrong-key", ahkKindTruncated: "truncated", ahkKindHold: "hold",
}

// ahkStep is how the stand-in answers one attempt.
type ahkStep struct {
	kind  ahkKind
	code  string        // resultCode of an F
	delay time.Duration // answer this much later
}

func (s ahkStep) String() string { return ahkKindNames[s.kind] }

// after returns the step answered d late.
func (s ahkStep) after(d time.Duration) ahkStep { s.delay = d; return s }

var (
	ahkS            = ahkStep{kind: ahkKindS}
	ahkU            = ahkStep{kind: ahkKindU}
	ahkTrafficLimit = ahkStep{kind: ahkKindTrafficLimit}
	ahkHang         = ahkStep{kind: ahkKindHang}
	ahk5xx          = ahkStep{kind: ahkKind5xx}
	ahk429          = ahkStep{kind: ahkKind429}
	ahkReset        = ahkStep{kind: ahkKindReset}
	ahkUnsigned     = ahkStep{kind: ahkKindUnsigned}
	ahkUnsignedF    = ahkStep{kind: ahkKindUnsignedF, code: "ORDER_STATUS_INVALID"}
	ahkWrongKey     = ahkStep{kind: ahkKindWrongKey}
	ahkTruncated    = ahkStep{kind: ahkKindTruncated}
	ahkHold         = ahkStep{kind: ahkKindHold}
)

func ahkF(code string) ahkStep { return ahkStep{kind: ahkKindF, code: code} }

func ahkTimes(n int, s ahkStep) []ahkStep {
	out := make([]ahkStep, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// ahkAttempt is one request the stand-in received.
type ahkAttempt struct {
	seq         int       // arrival number across the stand-in
	at          time.Time // arrival
	done        time.Time // handler returned
	requestID   string
	bizNo       string
	status      string // orderStatus
	path        string
	method      string
	header      http.Header
	body        []byte
	instance    string  // X-Egress-Instance, set by a test's reverse_proxy
	step        ahkStep // how it was answered
	replayed    bool    // answered from the replay store
	problem     string  // why the request is not what AlipayHK accepts; "" when fine
	reply       []byte  // the envelope bytes written (S/F/U answers)
	answeredS   bool    // a signed S was written in full to a caller still there
	callerLeft  bool    // the caller went away before an answer
	landed      bool    // no longer in flight: answered or abandoned
	landedAt    time.Time
	requestTime time.Time
}

// ahkDecision is a final answer kept for replays.
type ahkDecision struct {
	bodyHash [32]byte
	header   map[string]string
	body     []byte
	status   string // S or F
}

type alipayStandIn struct {
	t          testing.TB
	clientID   string
	keyVersion string          // the keyVersion attempts must carry; "" accepts any
	merchant   *rsa.PublicKey  // verifies the attempts
	key        *rsa.PrivateKey // AlipayHK's: signs the answers
	wrong      *rsa.PrivateKey // another key, for ahkWrongKey

	mu       sync.Mutex
	address  string
	ln       net.Listener
	srv      *http.Server
	scripts  map[string][]ahkStep
	def      ahkStep
	replay   bool
	decided  map[string]*ahkDecision
	log      []*ahkAttempt
	inflight map[string]int
	overlap  map[string]bool
	gate     chan struct{}
	released bool
	closed   chan struct{}
	orders   int
}

var (
	ahkWrongOnce sync.Once
	ahkOtherKey  *rsa.PrivateKey
)

func newAlipayStandIn(t testing.TB) *alipayStandIn {
	t.Helper()
	k := demoKeys(t)
	ahkWrongOnce.Do(func() {
		var err error
		if ahkOtherKey, err = signature.GenerateKey(); err != nil {
			panic(err)
		}
	})
	a := &alipayStandIn{
		t: t, clientID: testClient, merchant: &k.merchant.PublicKey, key: k.gateway, wrong: ahkOtherKey,
		scripts: map[string][]ahkStep{}, def: ahkS, decided: map[string]*ahkDecision{},
		inflight: map[string]int{}, overlap: map[string]bool{}, gate: make(chan struct{}), closed: make(chan struct{}),
	}
	if err := a.listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.mu.Lock()
		srv := a.srv
		a.mu.Unlock()
		close(a.closed)
		if srv != nil {
			_ = srv.Close()
		}
	})
	return a
}

func (a *alipayStandIn) listen(addr string) error {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old socket may take a moment to go
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("stand-in listening on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 30 * time.Second}
	a.mu.Lock()
	a.ln, a.srv, a.address = ln, srv, ln.Addr().String()
	a.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

func (a *alipayStandIn) addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.address
}

// closeListener stops listening and drops every connection: attempts are
// refused until reopen.
func (a *alipayStandIn) closeListener() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	a.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// reopen listens again on the same port.
func (a *alipayStandIn) reopen(t testing.TB) {
	t.Helper()
	if err := a.listen(a.addr()); err != nil {
		t.Fatal(err)
	}
}

func (a *alipayStandIn) script(key string, steps ...ahkStep) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.scripts[key] = append([]ahkStep(nil), steps...)
}

func (a *alipayStandIn) setDefault(s ahkStep) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.def = s
}

func (a *alipayStandIn) setReplay(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.replay = on
}

func (a *alipayStandIn) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.released {
		a.released = true
		close(a.gate)
	}
}

// next picks the step for an attempt: the requestId's script, else the
// merchantBizNo's, else the default. A script's last step sticks.
func (a *alipayStandIn) next(requestID, bizNo string) ahkStep {
	for _, key := range []string{requestID, bizNo} {
		if key == "" {
			continue
		}
		if steps, ok := a.scripts[key]; ok && len(steps) > 0 {
			s := steps[0]
			if len(steps) > 1 {
				a.scripts[key] = steps[1:]
			}
			return s
		}
	}
	return a.def
}

var ahkEpochMillis = regexp.MustCompile(`^[0-9]{13}$`)

// check returns why an attempt is not what AlipayHK accepts ("" if fine).
func (a *alipayStandIn) check(r *http.Request, body []byte, at time.Time) (string, time.Time) {
	if r.Method != http.MethodPost {
		return "method " + r.Method, time.Time{}
	}
	if r.URL.Path != syncPath || r.URL.RawQuery != "" {
		return "path " + r.URL.RequestURI() + ", want " + syncPath, time.Time{}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return "Content-Type " + ct, time.Time{}
	}
	for _, h := range []string{"Client-Id", "Request-Time", "Signature"} {
		if n := len(r.Header.Values(h)); n != 1 {
			return fmt.Sprintf("%d %s headers", n, h), time.Time{}
		}
	}
	if c := r.Header.Get("Client-Id"); c != a.clientID {
		return "Client-Id " + c, time.Time{}
	}
	rt := r.Header.Get("Request-Time")
	if !ahkEpochMillis.MatchString(rt) {
		return "Request-Time " + rt + " is not epoch milliseconds", time.Time{}
	}
	ms, _ := strconv.ParseInt(rt, 10, 64)
	rtime := time.UnixMilli(ms)
	if d := at.Sub(rtime); d > time.Minute || d < -time.Minute {
		return "Request-Time " + rt + " is not fresh", rtime
	}
	sigHeader := r.Header.Get("Signature")
	a.mu.Lock()
	kv := a.keyVersion
	a.mu.Unlock()
	if kv != "" && !strings.HasPrefix(sigHeader, "algorithm=RSA256,keyVersion="+kv+",signature=") {
		return "Signature header not of the form algorithm=RSA256,keyVersion=" + kv + ",signature=…: " + sigHeader, rtime
	}
	if !strings.HasPrefix(sigHeader, "algorithm=RSA256,keyVersion=") {
		return "Signature header not of the SDK form: " + sigHeader, rtime
	}
	h, err := signature.ParseHeader(sigHeader)
	if err != nil {
		return "Signature: " + err.Error(), rtime
	}
	if err := signature.Verify(a.merchant, http.MethodPost, syncPath, a.clientID, rt, body, h.Signature); err != nil {
		return "the signature does not verify over POST " + syncPath + "\\n<Client-Id>.<Request-Time>.<body>", rtime
	}
	var req struct {
		RequestID     string `json:"requestId"`
		MerchantBizNo string `json:"merchantBizNo"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return "body is not a JSON object: " + err.Error(), rtime
	}
	if req.RequestID == "" || len(req.RequestID) > 32 {
		return fmt.Sprintf("requestId %q", req.RequestID), rtime
	}
	return "", rtime
}

// setKeyVersion makes every attempt carry keyVersion=v in its Signature.
func (a *alipayStandIn) setKeyVersion(v string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keyVersion = v
}

func (a *alipayStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The sender went away before its body was through (an egress
		// killed mid-send): no request arrived, as at AlipayHK, whose
		// server reads a body before it looks at it. Recorded, it would
		// be an attempt with a signature over a body cut short.
		return
	}
	var fields struct {
		RequestID     string `json:"requestId"`
		MerchantBizNo string `json:"merchantBizNo"`
		OrderStatus   string `json:"orderStatus"`
	}
	_ = json.Unmarshal(body, &fields)
	problem, rtime := a.check(r, body, at)

	a.mu.Lock()
	rec := &ahkAttempt{
		seq: len(a.log), at: at, requestID: fields.RequestID, bizNo: fields.MerchantBizNo, status: fields.OrderStatus,
		path: r.URL.Path, method: r.Method, header: r.Header.Clone(), body: body,
		instance: r.Header.Get("X-Egress-Instance"), problem: problem, requestTime: rtime,
	}
	a.log = append(a.log, rec)
	a.inflight[rec.bizNo]++
	if a.inflight[rec.bizNo] > 1 {
		a.overlap[rec.bizNo] = true
	}
	hash := sha256.Sum256(body)
	var step ahkStep
	var replay *ahkDecision
	switch d, ok := a.decided[rec.requestID]; {
	case problem != "":
		// AlipayHK refuses what does not verify; the test reports it
		// through checkWellFormed.
		step = ahkF("INVALID_SIGNATURE")
	case ok && a.replay && d.bodyHash == hash:
		replay, rec.replayed = d, true
		step = ahkStep{kind: map[string]ahkKind{"S": ahkKindS, "F": ahkKindF}[d.status], code: "replay"}
	case ok && a.replay:
		rec.replayed = true
		step = ahkF("PARAM_ILLEGAL")
	default:
		step = a.next(rec.requestID, rec.bizNo)
	}
	rec.step = step
	gate := a.gate
	a.mu.Unlock()
	defer func() {
		a.landed(rec)
		a.mu.Lock()
		rec.done = time.Now()
		a.mu.Unlock()
	}()

	clientID := r.Header.Get("Client-Id")
	switch {
	case problem != "":
		a.writeEnvelope(w, r, rec, clientID, a.key, ahkEnvelope("F", "INVALID_SIGNATURE", "the stand-in refused: "+problem, ""))
		return
	case replay != nil:
		a.writeRaw(w, r, rec, replay.header, replay.body, replay.status == "S")
		return
	case rec.replayed:
		a.writeEnvelope(w, r, rec, clientID, a.key, ahkEnvelope("F", "PARAM_ILLEGAL", "requestId reused with another body", ""))
		return
	}

	if step.delay > 0 {
		select {
		case <-time.After(step.delay):
		case <-r.Context().Done():
			a.left(rec)
			return
		}
	}
	switch step.kind {
	case ahkKindS, ahkKindHold:
		env := ahkEnvelope("S", "SUCCESS", "success", a.successFields(rec))
		hdr, envBody := a.signed(r, clientID, a.key, env)
		a.decide(rec, hash, "S", hdr, envBody)
		if step.kind == ahkKindHold {
			select {
			case <-gate:
			case <-r.Context().Done():
				a.left(rec)
				return
			case <-a.closed:
				return
			}
		}
		a.writeRaw(w, r, rec, hdr, envBody, true)
	case ahkKindF:
		hdr, envBody := a.signed(r, clientID, a.key, ahkEnvelope("F", step.code, "refused by the stand-in", ""))
		a.decide(rec, hash, "F", hdr, envBody)
		a.writeRaw(w, r, rec, hdr, envBody, false)
	case ahkKindU:
		a.writeEnvelope(w, r, rec, clientID, a.key, ahkEnvelope("U", "UNKNOWN_EXCEPTION", "try again later", ""))
	case ahkKindTrafficLimit:
		a.writeEnvelope(w, r, rec, clientID, a.key, ahkEnvelope("U", "REQUEST_TRAFFIC_EXCEED_LIMIT", "too many requests", ""))
	case ahkKindHang:
		select {
		case <-r.Context().Done():
			a.left(rec)
		case <-a.closed:
		case <-time.After(2 * time.Minute):
		}
	case ahkKind5xx:
		a.landed(rec)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "upstream connect error")
	case ahkKind429:
		hdr, envBody := a.signed(r, clientID, a.key, ahkEnvelope("U", "REQUEST_TRAFFIC_EXCEED_LIMIT", "slow down", ""))
		for k, v := range hdr {
			w.Header()[k] = []string{v}
		}
		a.landed(rec)
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write(envBody)
	case ahkKindReset:
		a.landed(rec)
		a.reset(w)
	case ahkKindUnsigned:
		env := ahkEnvelope("S", "SUCCESS", "success", a.successFields(rec))
		a.writeRaw(w, r, rec, map[string]string{"Content-Type": "application/json;charset=UTF-8"}, env, false)
	case ahkKindUnsignedF:
		env := ahkEnvelope("F", step.code, "refused, unsigned", "")
		a.writeRaw(w, r, rec, map[string]string{"Content-Type": "application/json;charset=UTF-8"}, env, false)
	case ahkKindWrongKey:
		a.writeEnvelope(w, r, rec, clientID, a.wrong, ahkEnvelope("S", "SUCCESS", "success", a.successFields(rec)))
	case ahkKindTruncated:
		hdr, envBody := a.signed(r, clientID, a.key, ahkEnvelope("S", "SUCCESS", "success", a.successFields(rec)))
		a.landed(rec)
		a.truncate(w, hdr, envBody)
	}
}

// landed ends an attempt's flight: called just before its answer is
// written, since the caller may send the lane's next attempt as soon as it
// has read the answer, before this handler returns.
func (a *alipayStandIn) landed(rec *ahkAttempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !rec.landed {
		rec.landed, rec.landedAt = true, time.Now()
		a.inflight[rec.bizNo]--
	}
}

// left records that the caller went away before an answer.
func (a *alipayStandIn) left(rec *ahkAttempt) {
	a.mu.Lock()
	rec.callerLeft = true
	a.mu.Unlock()
}

// decide keeps a final answer for replays: in replay mode the decision is
// taken on arrival, like AlipayHK, which processes an order whether or not
// its answer reaches the caller.
func (a *alipayStandIn) decide(rec *ahkAttempt, hash [32]byte, status string, hdr map[string]string, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.decided[rec.requestID]; !ok {
		a.decided[rec.requestID] = &ahkDecision{bodyHash: hash, header: hdr, body: body, status: status}
	}
}

// successFields are the order fields of an S envelope: AlipayHK's orderId
// and what it issued.
func (a *alipayStandIn) successFields(rec *ahkAttempt) string {
	a.mu.Lock()
	a.orders++
	n := a.orders
	a.mu.Unlock()
	return fmt.Sprintf(`"orderId":"AHK%012d","orderStatus":%q, "distributeResult":[{"sceneCode":"PASS","extInfo":{"benefitId":"BEN-%d-%s"}}]`,
		n, rec.status, n, uid(6))
}

// ahkEnvelope is an AlipayHK envelope. Its bytes are deliberately not what
// a JSON encoder writes (keys out of order, a space after a comma), so a
// gateway that re-serializes instead of passing the bytes on is caught.
func ahkEnvelope(letter, code, msg, fields string) []byte {
	b := fmt.Sprintf(`{"result":{"resultStatus":%q,"resultCode":%q,"resultMessage":%q}`, letter, code, msg)
	if fields != "" {
		b += ", " + fields
	}
	return []byte(b + "}")
}

// ahkHongKong is AlipayHK's zone: Response-Time is ISO 8601 with an offset.
var ahkHongKong = time.FixedZone("HKT", 8*3600)

// signed returns the lowercase response headers AlipayHK sends with body
// signed by key over POST <path>\n<Client-Id>.<Response-Time>.<body>.
func (a *alipayStandIn) signed(r *http.Request, clientID string, key *rsa.PrivateKey, body []byte) (map[string]string, []byte) {
	rt := time.Now().In(ahkHongKong).Format("2006-01-02T15:04:05.000-07:00")
	sig, err := signature.Sign(key, http.MethodPost, r.URL.Path, clientID, rt, body)
	if err != nil {
		panic(err)
	}
	return map[string]string{
		"Content-Type":  "application/json;charset=UTF-8",
		"response-time": rt,
		"client-id":     clientID,
		"signature":     signature.FormatHeader("1", sig),
	}, body
}

func (a *alipayStandIn) writeEnvelope(w http.ResponseWriter, r *http.Request, rec *ahkAttempt, clientID string, key *rsa.PrivateKey, env []byte) {
	hdr, body := a.signed(r, clientID, key, env)
	a.writeRaw(w, r, rec, hdr, body, false)
}

// writeRaw writes an HTTP 200 answer. Header names are set as given, so
// the lowercase ones reach the wire in lowercase as AlipayHK sends them.
func (a *alipayStandIn) writeRaw(w http.ResponseWriter, r *http.Request, rec *ahkAttempt, hdr map[string]string, body []byte, signedS bool) {
	for k, v := range hdr {
		w.Header()[k] = []string{v}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	// Recorded before it is written: the caller may act on the answer (and
	// the test look at the record) before this handler returns.
	a.mu.Lock()
	rec.reply = body
	a.mu.Unlock()
	a.landed(rec)
	w.WriteHeader(http.StatusOK)
	_, werr := w.Write(body)
	ferr := http.NewResponseController(w).Flush()
	a.mu.Lock()
	defer a.mu.Unlock()
	rec.answeredS = signedS && werr == nil && ferr == nil && r.Context().Err() == nil
}

// reset answers with a TCP RST: the connection is aborted, no answer.
func (a *alipayStandIn) reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// truncate announces the whole signed envelope but sends half, then closes.
func (a *alipayStandIn) truncate(w http.ResponseWriter, hdr map[string]string, body []byte) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n", len(body)+64)
	for k, v := range hdr {
		fmt.Fprintf(buf, "%s: %s\r\n", k, v)
	}
	buf.WriteString("\r\n")
	buf.Write(body[:len(body)/2])
	_ = buf.Flush()
}

// snapshot copies records so callers can read them without the lock.
func (a *alipayStandIn) snapshot(keep func(*ahkAttempt) bool) []ahkAttempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []ahkAttempt
	for _, r := range a.log {
		if keep(r) {
			out = append(out, *r)
		}
	}
	return out
}

// lane is every attempt of one merchantBizNo, in arrival order.
func (a *alipayStandIn) lane(bizNo string) []ahkAttempt {
	return a.snapshot(func(r *ahkAttempt) bool { return r.bizNo == bizNo })
}

// attemptsOf is every attempt of one requestId, in arrival order.
func (a *alipayStandIn) attemptsOf(requestID string) []ahkAttempt {
	return a.snapshot(func(r *ahkAttempt) bool { return r.requestID == requestID })
}

// settledAttemptsOf is attemptsOf once every attempt's handler returned,
// so that what it wrote (answeredS) is recorded.
func (a *alipayStandIn) settledAttemptsOf(t testing.TB, requestID string) []ahkAttempt {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		atts := a.attemptsOf(requestID)
		settled := true
		for _, r := range atts {
			if r.done.IsZero() {
				settled = false
			}
		}
		if settled {
			return atts
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempts of %s still in the stand-in's hands after 30s", requestID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (a *alipayStandIn) all() []ahkAttempt {
	return a.snapshot(func(*ahkAttempt) bool { return true })
}

// finalReply is the last S or F envelope written for requestID.
func (a *alipayStandIn) finalReply(t testing.TB, requestID string) []byte {
	t.Helper()
	var out []byte
	for _, r := range a.attemptsOf(requestID) {
		if (r.step.kind == ahkKindS || r.step.kind == ahkKindF || r.step.kind == ahkKindHold) && r.reply != nil {
			out = r.reply
		}
	}
	if out == nil {
		t.Fatalf("the stand-in sent no S or F envelope for %s", requestID)
	}
	return out
}

// overlaps lists the merchantBizNos that had two attempts in flight at once.
func (a *alipayStandIn) overlaps() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k := range a.overlap {
		out = append(out, k)
	}
	return out
}

// checkWellFormed asserts that every attempt of the given requestIds was
// well-formed, and that all of one requestId carried the same body bytes.
func (a *alipayStandIn) checkWellFormed(t testing.TB, requestIDs ...string) {
	t.Helper()
	for _, id := range requestIDs {
		atts := a.attemptsOf(id)
		for i, r := range atts {
			if r.problem != "" {
				t.Errorf("attempt %d of %s is not what AlipayHK accepts: %s", i+1, id, r.problem)
			}
			if !bytes.Equal(r.body, atts[0].body) {
				t.Errorf("attempt %d of %s carries other body bytes than the first:\n%s\n%s", i+1, id, r.body, atts[0].body)
			}
		}
	}
}
