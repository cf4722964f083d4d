package orderflow

// The AlipayHK API facts both directions and the CLI share, defined once
// (docs/SPEC.md §1).
const (
	// SyncPath is the order-sync endpoint: where callers post, and where
	// egress posts to AlipayHK by default.
	SyncPath = "/api/open/alipay/v1/merchant/order/sync"
	// ContentTypeJSON is the Content-Type of every answer the gateway
	// makes and of every request it signs.
	ContentTypeJSON = "application/json; charset=UTF-8"
	// DefaultMaxBodySize is the default max_body_size of both handlers.
	DefaultMaxBodySize = 64 << 10
)
