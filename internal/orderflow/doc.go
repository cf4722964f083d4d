// Package orderflow is the order-sync pipeline without Caddy: what a
// request is answered, and why. It imports no Caddy package, so the
// ingress handler at the module root and the egress side (internal/outbox)
// share it without importing each other.
//
// The Caddy glue builds a Flow from a Config once, at provision (keys read
// and prepared, the scenario catalog, the store, the status map), and for
// each request calls Serve with the raw Request (method, path as signed,
// headers, body) and a Forwarder over the next handler. Serve returns the
// Answer: the reply to write, which is the value the replay store keeps,
// and what the log line and the metrics need.
//
// The files, by concern:
//
//   - flow.go: Serve, the nine steps of the pipeline top to bottom, and how
//     an answer is stored (or not) once the requestId is claimed.
//   - auth.go: authentication (Client-Id, keyVersion, signature,
//     Request-Time) and the media type rule.
//   - validate.go: decode once, the schemas, the scenario match.
//   - upstream.go: what the upstream gets (the Forwarder, the headers of
//     the upstream contract) and how its reply maps to a result (MapReply,
//     a pure function).
//   - reply.go: the reply with its wire header names and signature.
//   - result.go: the result vocabulary both directions answer with: the
//     codes with their status letter, the outcome, the envelope body.
//     Nothing else in the module defines a result code.
//   - config.go, answer.go: the Flow's input and output types.
package orderflow
