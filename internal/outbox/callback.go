package outbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// Standard Webhooks headers, lowercase as the specification writes them.
const (
	headerWebhookID        = "webhook-id"
	headerWebhookTimestamp = "webhook-timestamp"
	headerWebhookSignature = "webhook-signature"
)

// defaultCallbackTimeout bounds a callback when the glue's client has no
// timeout of its own.
const defaultCallbackTimeout = 10 * time.Second

// SignWebhook returns the webhook-signature value of Standard Webhooks
// for one message: "v1," and the base64 HMAC-SHA256, keyed with secret,
// of "<id>.<timestamp>.<body>".
func SignWebhook(secret []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// sendCallbacks sends the due callbacks, a few at once, claimed in the
// store so that instances sharing it do not all send one: when woken (a
// final state), and at least every PollInterval (retries, other
// instances' final states). It never touches a lane.
func (r *Runner) sendCallbacks() {
	defer r.wg.Done()
	timer := time.NewTimer(r.opts.PollInterval)
	defer timer.Stop()
	for {
		full := r.callbackRound()
		if full {
			continue // there may be more due now
		}
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
		case <-r.wakeCalls:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(r.opts.PollInterval)
	}
}

// callbackRound claims and sends one batch of due callbacks; it reports
// whether the batch was full.
func (r *Runner) callbackRound() bool {
	if r.ctx.Err() != nil {
		return false
	}
	cfg, _ := r.current()
	if cfg.Callback == nil {
		// Pending callbacks of entries ended under an earlier
		// configuration wait, durable, for a callback to be configured.
		return false
	}
	timeout := cfg.Callback.Client.Timeout
	if timeout <= 0 {
		timeout = defaultCallbackTimeout
	}
	// The claim outlives the send: nobody else sends it meanwhile.
	claim := timeout + storeTimeout + 30*time.Second
	ctx, cancel := storeCtx(r.ctx)
	due, err := r.ob.ClaimCallbacks(ctx, r.clientID, time.Now(), r.opts.CallbackWorkers, claim)
	cancel()
	if err != nil {
		if r.ctx.Err() == nil {
			r.obs.Trouble(TroubleClaimCallbacks, store.LaneKey{}, err)
		}
		return false
	}
	var wg sync.WaitGroup
	for _, e := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.callback(cfg, timeout, e)
		}()
	}
	wg.Wait()
	return len(due) == r.opts.CallbackWorkers
}

// callback POSTs one entry's final state and records the result.
func (r *Runner) callback(cfg *Config, timeout time.Duration, e *store.Entry) {
	cb := cfg.Callback
	id := e.Callback.WebhookID
	number := e.Callback.Attempts + 1
	body := EntryJSON(e)
	began := time.Now()
	ts := strconv.FormatInt(began.Unix(), 10)

	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	status, err := postCallback(ctx, cb, id, ts, body)
	cancel()
	latency := time.Since(began)
	ev := CallbackEvent{
		ClientID:   e.ClientID,
		RequestID:  e.RequestID,
		WebhookID:  id,
		State:      e.State,
		Number:     number,
		HTTPStatus: status,
		Latency:    latency,
	}
	key := store.RequestKey{ClientID: e.ClientID, RequestID: e.RequestID}
	if r.ctx.Err() != nil {
		return // stopped: the claim lapses and the callback is sent again
	}
	// Recorded even if Stop comes now: the write is short and saves a
	// duplicate.
	wctx, wcancel := storeCtx(context.WithoutCancel(r.ctx))
	defer wcancel()
	if err == nil && status >= 200 && status < 300 {
		ev.Delivered = true
		if err := r.ob.CallbackDone(wctx, key, id); err != nil {
			r.obs.Trouble(TroubleCallbackDone, store.LaneKey{}, err)
		}
		r.obs.Callback(ev)
		return
	}
	if err != nil {
		ev.Error = "transport: " + quote(err.Error())
	} else {
		ev.Error = "HTTP " + strconv.Itoa(status)
	}
	ev.NextAttemptAt = time.Now().Add(backoff(number, cfg.RetryInitial, cfg.RetryMax, r.jitter()))
	if err := r.ob.CallbackRetry(wctx, key, id, ev.NextAttemptAt, ev.Error); err != nil {
		r.obs.Trouble(TroubleCallbackRetry, store.LaneKey{}, err)
	}
	r.obs.Callback(ev)
}

// postCallback sends one signed callback and returns the HTTP status.
func postCallback(ctx context.Context, cb *Callback, id, ts string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cb.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	// Set directly: Header.Set would write Webhook-Id; the specification
	// and its libraries write these names in lowercase.
	req.Header[headerWebhookID] = []string{id}
	req.Header[headerWebhookTimestamp] = []string{ts}
	req.Header[headerWebhookSignature] = []string{SignWebhook(cb.Secret, id, ts, body)}
	resp, err := cb.Client.Do(req)
	if err != nil {
		return 0, err
	}
	// Drained a little so that the connection can be reused; the answer
	// itself does not matter, only its status.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
