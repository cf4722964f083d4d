package main

import (
	"net/http"
	"time"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/signature"
)

// replyBody is a SUCCESS envelope of the size the gateway signs on the
// first-time path.
var replyBody = []byte(`{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},"orderId":"ORD-1234567","orderStatus":"TICKETED","distributeResult":[]}`)

// newSigner returns one reply signature as the gateway makes it (same key,
// same content, same implementation) and the implementation's name. Keep
// it in step with how the handler signs.
func newSigner(pem []byte) (sign func(now time.Time) error, backend string, err error) {
	// The handler's signer: loaded once, with the backend this binary's
	// build tags chose (OpenSSL under -tags openssl).
	s, err := signature.LoadSigner(pem)
	if err != nil {
		return nil, "", err
	}
	return func(now time.Time) error {
		_, err := s.Sign(http.MethodPost, orderflow.SyncPath, "BENCH-CLIENT", signature.FormatTime(now), replyBody)
		return err
	}, s.Backend(), nil
}
