// Package orderflow is the order-sync pipeline without Caddy: what a
// request is answered, and why. It imports no Caddy package, so the
// ingress handler at the module root and the egress handler share it
// without importing each other.
//
// result.go is the result vocabulary: the AlipayHK result codes with their
// status letters, the outcome of a request and the envelope body every
// answer carries. Nothing else in the module defines a result code.
package orderflow
