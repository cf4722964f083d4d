// Package outbox is the egress side of the order sync without Caddy: a
// merchant's own (legacy) system posts a plain, unsigned order; the
// gateway validates it with the same decode, schemas, scenarios and state
// machines as ingress, queues it durably in the store's outbox, signs and
// sends it to AlipayHK, verifies AlipayHK's signed reply, retries what is
// retryable in order per order, and tells the legacy system the outcome:
// at once, through a lookup, and through a signed callback.
//
// It imports no Caddy package and not the module root. The root's glue
// (the alipay_order_push handler) reads the HTTP request, calls
// Service.Submit or Service.Lookup and writes the Response; it implements
// Sender over the reverse_proxy that follows the handler; it starts and
// stops one Runner per (store, client_id), shared across config
// generations, and hands it each new generation with Runner.Update.
//
// # One POST
//
// Submit runs these steps, the first that answers wins:
//
//  1. Method POST (the glue sends GET to Lookup), a JSON Content-Type, the
//     body within max_body_size: else the envelope of ingress (README,
//     "What the caller gets") made by the gateway, never signed.
//  2. The strict decode of ingress (message.Decode).
//  3. requestId: when the body has none (absent or JSON null) it is
//     derived, see below, and written into the body.
//  4. The base schema, the scenario match, the scenario's schema, the
//     status belongs to the scenario: else PARAM_ILLEGAL or
//     UN_SUPPORT_BUSINESS.
//  5. The body AlipayHK will get, fixed now: message.Document.Canonical
//     (members sorted, no whitespace, strings minimally escaped, number
//     literals as written). Its SHA-256 is the body hash of the entry.
//  6. Dedupe: an entry with this (client_id, requestId) answers for it
//     (same hash: that entry, waited for like a new one; another hash:
//     PARAM_ILLEGAL "requestId: already used with a different body").
//     This comes before the state check, so that a re-posted order is
//     never judged against its own status.
//  7. The state check: the lane's accepted status (AlipayHK's last S), then
//     every entry still queued, in order, each applied as if accepted; the
//     new status is judged against the result by the scenario's state
//     machine. Reject: ORDER_STATUS_INVALID, nothing queued. The current
//     status again and not repeatable (as ingress treats it): with nothing queued,
//     SUCCESS made by the gateway from the accepted state, nothing sent;
//     when the current status is a queued entry's, the answer is that
//     entry's. A lane that belongs to another scenario:
//     ORDER_STATUS_INVALID.
//  8. Enqueue, durable before anything is answered or sent, atomic with the
//     dedupe and with the lane version the check read (if the lane moved,
//     the lane is read and checked again).
//  9. Prefer: respond-async: 202 with the entry. Otherwise the runner is
//     woken and Submit waits up to wait for a final state: AlipayHK's
//     envelope byte for byte (200), or 202 with the entry.
//
// The store failing at any step before the entry is durable is 503 with the
// UNKNOWN_EXCEPTION envelope; after it, the answer is 202 (the entry is
// queued, whatever the store does next).
//
// # Answers
//
// HTTP 200 always carries an envelope: AlipayHK's (Order-Push-Decided-By:
// alipayhk), or one the gateway made for a refusal or for the current
// status posted again (gateway). HTTP 202 always carries the entry
// (EntryView): queued, or final without an answer of AlipayHK's to give
// (expired; failed by an operator's drop), its state saying which. 503
// carries the UNKNOWN_EXCEPTION envelope; a lookup of nothing is 404.
// Order-Push-Request-Id names the entry the answer is about: the posted or
// derived requestId, or, for a post answered with the queued entry that
// already asks for the same status, that entry's.
//
// Submit waits for the runner of this process to report the final state.
// With instances sharing a Redis, another instance may deliver the entry;
// Submit then sees its final state when it reads the entry once more at
// the end of wait.
//
// # The derived requestId
//
// An order posted without a requestId (absent or JSON null) gets
//
//	hex(SHA-256(merchantBizNo + "\n" + orderStatus + "\n" + orderModifyTime))[:32]
//
// lowercase, where merchantBizNo and orderStatus are the body's strings as
// decoded (escapes resolved; "" when absent or not a string) and
// orderModifyTime is the body's epoch milliseconds in decimal without
// leading zeros ("" when absent, null or not a valid epoch-millisecond
// integer). So a legacy system that retries a POST gets the same requestId
// and the same entry, and another gateway instance derives the same one.
// DeriveRequestID computes it.
//
// # Delivery
//
// The Runner delivers the lanes (client_id, merchantBizNo) of one client:
// the head entry of a lane only, strictly in acceptance order, lanes
// concurrently on a bounded pool of workers. A worker holds the lane's
// lease (renewed while an attempt runs; lost: it stops the lane without
// writing). Every attempt is signed afresh: Request-Time in epoch
// milliseconds and a Signature over
//
//	POST <path>\n<client_id>.<Request-Time>.<body>
//
// with the same requestId and body bytes. The reply is final only if it is
// HTTP 200, its Signature verifies with AlipayHK's key over
// "POST <path>\n<Client-Id>.<Response-Time>.<body>" (its Client-Id, when
// present, must be ours), and result.resultStatus is S or F. Everything
// else is retried with exponential backoff and full jitter,
// random(0, min(retry_max, retry_initial·2^(attempts-1))), until max_age
// after the entry was queued: expired. S: succeeded, and the lane's
// accepted state moves on; F: failed. A final state pops the lane's head
// (in the same durable write) and wakes Submit calls waiting for it.
//
// # Callbacks
//
// With a callback configured, every final state is POSTed to the legacy
// system until it answers 2xx, signed per Standard Webhooks (webhook-id,
// stable for one final state; webhook-timestamp, unix seconds;
// webhook-signature "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>").
// The body is the entry as Lookup returns it. Pending callbacks are durable
// in the store and never hold up a lane.
package outbox
