package cli

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/signature"
)

type sendOptions struct {
	key            keyFlags
	url, verifyKey string
	timeout        time.Duration
	sets           []string // --set NAME=VALUE, applied before signing
}

func sendCommand() *cobra.Command {
	var o sendOptions
	c := &cobra.Command{
		Use:   "send --url URL --client-id ID --key PRIVATE_KEY_FILE [--key-version N] [--verify-key GATEWAY_PUBLIC_KEY_FILE] [--timeout 30s] [--set NAME=VALUE]... BODY_FILE",
		Short: "Sign a body, POST it to the gateway and check the signed reply",
		Long: `
Signs BODY_FILE (- reads stdin) as sign does, with Request-Time now and the
path of --url, POSTs it to --url and prints the reply: the Response-Time,
Client-Id, Tracer-Id and Signature headers as "< Name: value" lines, the
envelope pretty-printed, and a last line resultCode/resultStatus.

--set changes the body before it is signed, without an editor or a JSON
tool: a new requestId, another order (merchantBizNo), one changed field.
Only the named fields' bytes change, so the rest of the file is sent exactly
as it is.

With --verify-key, the reply's Signature is checked exactly as the Alipay Go
SDK does: over "POST <path>\n<Client-Id reply header>.<Response-Time reply
header>.<reply body>", taking the value after "signature=", url-unescaping
it (query-style) and base64-decoding it, RSA-SHA256 PKCS#1 v1.5. It prints
"signature: verified" or fails. A reply without Signature is accepted, with a
warning, only when resultStatus is F or U, as the official SDKs do.

The exit status is 0 only when the gateway answered HTTP 200 with an
envelope (and, with --verify-key, a signature that verifies), whatever the
resultCode: check the last line for the business result. Redirects are not
followed.
`,
		Example: `  caddy alipay-order-sync send \
    --url http://127.0.0.1:8080/api/open/alipay/v1/merchant/order/sync \
    --client-id DEMO-CLIENT-ID \
    --key examples/demo-keys/merchant-private.pem \
    --verify-key examples/demo-keys/gateway-public.pem \
    examples/seed-gift-card.json
  caddy alipay-order-sync send ... \
    --set requestId=demo-2 --set merchantBizNo=demo-2 examples/seed-gift-card.json`,
		Args:         bodyArg,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return send(cmd, o, args[0])
		},
	}
	o.key.register(c)
	f := c.Flags()
	f.StringVar(&o.url, "url", "", "gateway URL, e.g. https://gw.example.com"+defaultPath+" (required)")
	f.StringVar(&o.verifyKey, "verify-key", "", "gateway public key file to verify the reply's Signature with")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up when the whole exchange takes longer (the SDKs use 30s)")
	f.StringArrayVar(&o.sets, "set", nil, setUsage)
	c.MarkFlagRequired("url")
	return c
}

// envelope is the part of the gateway's reply envelope send reports on.
type envelope struct {
	Result *orderflow.EnvelopeResult `json:"result"`
}

func send(cmd *cobra.Command, o sendOptions, bodyFile string) error {
	out, warn := cmd.OutOrStdout(), cmd.ErrOrStderr()

	// Every local mistake is reported before anything goes on the wire.
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("--url: want an absolute http:// or https:// URL, e.g. http://127.0.0.1:8080" + defaultPath)
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	s, err := o.key.signer()
	if err != nil {
		return err
	}
	var verifyKey *rsa.PublicKey
	if o.verifyKey != "" {
		data, err := os.ReadFile(o.verifyKey)
		if err != nil {
			return fmt.Errorf("--verify-key: %w", err)
		}
		if verifyKey, err = signature.ParsePublicKey(data); err != nil {
			return fmt.Errorf("--verify-key %s: %w", o.verifyKey, err)
		}
	}
	if o.timeout <= 0 {
		return errors.New("--timeout: must be positive, e.g. 30s")
	}
	body, err := readBody(cmd, bodyFile)
	if err != nil {
		return err
	}
	if body, err = setFields(body, o.sets); err != nil {
		return err
	}
	warnBody(warn, body)
	reqTime := signature.FormatEpochMillis(time.Now())
	sig, err := s.header(http.MethodPost, path, reqTime, body)
	if err != nil {
		return err
	}

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(signature.HeaderClientID, s.clientID)
	req.Header.Set(signature.HeaderRequestTime, reqTime)
	req.Header.Set(signature.HeaderSignature, sig)
	client := &http.Client{
		Timeout: o.timeout,
		// Following a redirect would turn the POST into a GET and sign
		// nothing useful; the 3xx itself is the finding.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("send: no reply from %s within %s (--timeout)", u.Redacted(), o.timeout)
		}
		return fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return fmt.Errorf("send: reading the reply from %s: %w", u.Redacted(), err)
	}
	if len(raw) > maxReply {
		return fmt.Errorf("send: reply from %s is larger than %d bytes; not the order-sync gateway?", u.Redacted(), maxReply)
	}

	for _, name := range []string{"Response-Time", "Client-Id", "Tracer-Id", "Signature"} {
		if v := resp.Header.Get(name); v != "" {
			fmt.Fprintf(out, "< %s: %s\n", name, v)
		}
	}
	if resp.StatusCode != http.StatusOK {
		printJSON(out, raw)
		return fmt.Errorf("send: HTTP %s from %s; the gateway answers every result, errors included, with 200",
			resp.Status, u.Redacted())
	}

	var env envelope
	var envErr error
	if json.Unmarshal(raw, &env) != nil || env.Result == nil || env.Result.ResultCode == "" {
		envErr = errors.New("send: the reply is not an order-sync envelope (no result.resultCode)")
	}

	var verifyErr error
	if verifyKey != nil {
		respSig := resp.Header.Get(signature.HeaderSignature)
		switch {
		case respSig != "":
			verifyErr = verifyLikeGoSDK(verifyKey, path, resp.Header, raw, o.verifyKey)
			if verifyErr == nil {
				fmt.Fprintln(out, "signature: verified")
			}
		case envErr == nil && (env.Result.ResultStatus == string(orderflow.StatusFailure) || env.Result.ResultStatus == string(orderflow.StatusUnknown)):
			fmt.Fprintf(warn, "warning: the reply has no Signature header; accepted because resultStatus is %s, as the official SDKs do\n",
				env.Result.ResultStatus)
		default:
			verifyErr = errors.New("send: --verify-key is set but the reply has no Signature header (the SDKs accept that only for resultStatus F or U)")
		}
		if got := resp.Header.Get(signature.HeaderClientID); got != "" && got != s.clientID {
			fmt.Fprintf(warn, "warning: the reply's Client-Id header differs from --client-id\n")
		}
	}
	printJSON(out, raw)
	if verifyErr != nil {
		return verifyErr
	}
	if envErr != nil {
		return envErr
	}
	_, err = fmt.Fprintf(out, "%s/%s\n", env.Result.ResultCode, env.Result.ResultStatus)
	return err
}
