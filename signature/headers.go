package signature

// The headers of AlipayHK's signature scheme, named as AlipayHK writes
// them on the wire: in lowercase. One official SDK compares reply header
// names case-sensitively, so a reply must carry exactly these names (set
// as header map keys, not through Header.Set, which would canonicalize
// them). Reading with Header.Get or Header.Values canonicalizes the name,
// so the same constants read a request's Client-Id as sent by any SDK.
const (
	HeaderClientID     = "client-id"
	HeaderRequestTime  = "request-time"
	HeaderResponseTime = "response-time"
	HeaderSignature    = "signature"
)
