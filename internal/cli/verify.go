package cli

import (
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-alipay/ordersync/signature"
)

// verifyLikeGoSDK checks a reply signature the way the official Go SDK
// does, deliberately without the leniency of signature.ParseHeader: the
// point of --verify-key is to tell whether real SDK clients will accept the
// reply, so a raw '+' that their query-style unescape turns into a space
// must fail here too. What is signed, and the RSA check, are
// signature.Verify's.
func verifyLikeGoSDK(pub *rsa.PublicKey, path string, h http.Header, body []byte, keyFile string) error {
	const item = "signature="
	v := h.Get(signature.HeaderSignature)
	i := strings.Index(v, item)
	if i < 0 {
		return errors.New("send: the reply's Signature header has no signature= item")
	}
	v, _, _ = strings.Cut(v[i+len(item):], ",")
	unescaped, err := url.QueryUnescape(v)
	if err != nil {
		return errors.New("send: the reply's signature= value has a bad %-escape")
	}
	sig, err := base64.StdEncoding.DecodeString(unescaped)
	if err != nil {
		return errors.New("send: the reply's signature= value is not standard base64 once url-unescaped (a raw '+' reads as a space: it must be sent as %2B)")
	}
	clientID, respTime := h.Get(signature.HeaderClientID), h.Get(signature.HeaderResponseTime)
	if err := signature.Verify(pub, http.MethodPost, path, clientID, respTime, body, sig); err != nil {
		msg := "send: the reply's Signature does not verify with --verify-key " + keyFile +
			` over "POST ` + path + `\n<Client-Id>.<Response-Time>.<body>"`
		switch {
		case clientID == "":
			msg += "; the reply has no Client-Id header, which the Go SDK signs with"
		case respTime == "":
			msg += "; the reply has no Response-Time header"
		}
		return errors.New(msg)
	}
	return nil
}
