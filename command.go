package ordersync

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/signature"
)

func init() {
	caddycmd.RegisterCommand(cliCommand)
}

// cliCommand is `caddy alipay-order-sync`. It is a package variable rather
// than a literal inside init so the tests build their command tree through
// the very CobraFunc Caddy calls.
var cliCommand = caddycmd.Command{
	Name:  "alipay-order-sync",
	Usage: "<keygen|sign|send|order|request> [flags]",
	Short: "Keys, signed requests and order look-ups for the AlipayHK order-sync gateway",
	Long: `
Tools for the alipay_order_sync handler:

  keygen   generate an RSA-2048 key pair (PEM files and the SDKs' base64 forms)
  sign     print the Client-Id, Request-Time and Signature headers for a body
  send     sign a body, POST it to the gateway and check the signed reply
  order    show an order's state through Caddy's admin endpoint
  request  show a stored reply for a requestId through Caddy's admin endpoint

Run 'caddy alipay-order-sync <sub-command> --help' for the flags of each.
`,
	CobraFunc: cliSetup,
}

const (
	cliDefaultPath   = "/api/open/alipay/v1/merchant/order/sync"
	cliContentType   = "application/json; charset=UTF-8"
	cliDefaultKeyVer = signature.DefaultKeyVersion
	// cliMaxReply bounds what send reads back: the gateway's envelope is a
	// few KiB, so anything near this is not the gateway talking.
	cliMaxReply = 8 << 20
)

// cliSetup fills in the cobra command Caddy made for cliCommand.
func cliSetup(cmd *cobra.Command) {
	cmd.SilenceUsage = true
	// SuggestionsFor matches nothing until this is set; cobra sets it lazily
	// only on the path it uses for root commands.
	cmd.SuggestionsMinimumDistance = 2
	// Cobra only rejects unknown sub-commands of the root command; below it,
	// a typo would silently print help and exit 0.
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown sub-command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		} else {
			msg += "; want keygen, sign, send, order or request"
		}
		return errors.New(msg)
	}
	cmd.AddCommand(cliKeygenCommand(), cliSignCommand(), cliSendCommand(),
		cliOrderCommand(), cliRequestCommand())
}

// ---- keygen ----

func cliKeygenCommand() *cobra.Command {
	var out, name string
	c := &cobra.Command{
		Use:   "keygen [--out DIR] [--name NAME]",
		Short: "Generate an RSA-2048 key pair for signing requests or replies",
		Long: `
Generates an RSA-2048 key pair, the size AlipayHK requires.

With --out DIR it writes DIR/NAME-private.pem (PKCS#8 PEM, mode 0600) and
DIR/NAME-public.pem (SubjectPublicKeyInfo PEM), creating DIR if needed, and
refuses to overwrite an existing file. It then prints both keys in the forms
the Alipay SDKs take: the private key as base64 PKCS#8 DER (merchantPrivateKey)
and the public key as base64 SPKI DER (alipayPublicKey). The handler accepts
either form (public_key_file / public_key, sign_responses private_key_file).

Without --out everything, PEM included, goes to stdout and nothing is written.

The private key is printed on purpose: keep the output out of logs and shared
terminals. Generate one pair per side: the caller signs requests with its
private key (the gateway holds its public key), the gateway signs replies with
its own private key (the caller holds that public key).
`,
		Example: `  caddy alipay-order-sync keygen --out keys --name merchant
  caddy alipay-order-sync keygen --out keys --name gateway
  caddy alipay-order-sync keygen > throwaway-keys.txt`,
		Args:         cliNoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cliKeygen(cmd.OutOrStdout(), out, name)
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory to write NAME-private.pem and NAME-public.pem to (default: print to stdout)")
	c.Flags().StringVar(&name, "name", "merchant", "file name prefix, e.g. merchant or gateway")
	return c
}

var cliNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

func cliKeygen(w io.Writer, dir, name string) error {
	// The name becomes part of a path: keep it to one plain file name.
	if !cliNameRE.MatchString(name) {
		return errors.New("--name: use 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
	}
	if dir != "" {
		// Check before the slow key generation, so a refusal is instant.
		for _, p := range cliKeyPaths(dir, name) {
			if err := cliRefuseExisting(p); err != nil {
				return err
			}
		}
	}
	key, err := signature.GenerateKey()
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	privPEM := signature.EncodePrivateKeyPEM(key)
	pubPEM := signature.EncodePublicKeyPEM(&key.PublicKey)
	if privPEM == nil || pubPEM == nil {
		return errors.New("keygen: the generated key could not be encoded")
	}

	if dir == "" {
		fmt.Fprintf(w, "%s private key (PKCS#8 PEM, keep it secret):\n%s\n", name, privPEM)
		fmt.Fprintf(w, "%s public key (SPKI PEM):\n%s\n", name, pubPEM)
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		paths := cliKeyPaths(dir, name)
		if err := cliWriteNew(paths[0], privPEM, 0o600); err != nil {
			return err
		}
		if err := cliWriteNew(paths[1], pubPEM, 0o644); err != nil {
			// A lone private key without its public half is just clutter
			// that would block the next attempt.
			os.Remove(paths[0])
			return err
		}
		fmt.Fprintf(w, "wrote %s (private key, PKCS#8 PEM, mode 0600: keep it secret)\n", paths[0])
		fmt.Fprintf(w, "wrote %s (public key, SPKI PEM)\n\n", paths[1])
	}
	fmt.Fprintf(w, "%s private key, SDK form (base64 PKCS#8 DER, as the SDKs' merchantPrivateKey):\n%s\n\n",
		name, signature.EncodePrivateKeyBase64(key))
	fmt.Fprintf(w, "%s public key, SDK form (base64 SPKI DER, as the SDKs' alipayPublicKey or the Caddyfile's public_key):\n%s\n",
		name, signature.EncodePublicKeyBase64(&key.PublicKey))
	return nil
}

func cliKeyPaths(dir, name string) [2]string {
	return [2]string{
		filepath.Join(dir, name+"-private.pem"),
		filepath.Join(dir, name+"-public.pem"),
	}
}

func cliRefuseExisting(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("keygen: %s already exists; refusing to overwrite it (choose another --name or --out)", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

// cliWriteNew creates path with O_EXCL, so a file that appeared since the
// first check is still never overwritten.
func cliWriteNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		return cliRefuseExisting(path)
	}
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("--out: writing %s: %w", path, err)
	}
	return nil
}

// ---- sign ----

type cliSignOptions struct {
	clientID, keyFile, keyVersion, method, path, reqTime string
}

func cliSignCommand() *cobra.Command {
	var o cliSignOptions
	c := &cobra.Command{
		Use:   "sign --client-id ID --key PRIVATE_KEY_FILE [--key-version N] [--method POST] [--path PATH] [--time T] BODY_FILE",
		Short: "Print the signed request headers for a body, to send with any HTTP client",
		Long: `
Signs BODY_FILE (- reads stdin) the way AlipayHK callers do and prints the
request headers to send, one per line:

  Client-Id: <ID>
  Request-Time: <T, default now in epoch milliseconds>
  Signature: algorithm=RSA256,keyVersion=<N>,signature=<url-encoded base64>
  Content-Type: application/json; charset=UTF-8

The signed content is "<METHOD> <PATH>\n<Client-Id>.<Request-Time>.<body>".
The body is signed byte for byte as read, trailing newline included, so send
exactly those bytes: curl --data-binary @FILE, not curl -d (which strips
newlines). --key takes a PEM (PKCS#8 or PKCS#1) or base64 PKCS#8 private key.
--time accepts epoch milliseconds or ISO-8601 with a zone, e.g. to reproduce a
stale request.
`,
		Example: `  caddy alipay-order-sync sign --client-id DEMO-CLIENT-ID \
    --key examples/demo-keys/merchant-private.pem examples/seed-gift-card.json > headers.txt
  curl -H @headers.txt --data-binary @examples/seed-gift-card.json \
    http://127.0.0.1:8080/api/open/alipay/v1/merchant/order/sync`,
		Args:         cliBodyArg,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cliSign(cmd, o, args[0])
		},
	}
	f := c.Flags()
	f.StringVar(&o.clientID, "client-id", "", "Client-Id the key belongs to (required)")
	f.StringVar(&o.keyFile, "key", "", "private key file to sign with (required)")
	f.StringVar(&o.keyVersion, "key-version", cliDefaultKeyVer, "keyVersion of the key, as registered with the gateway")
	f.StringVar(&o.method, "method", http.MethodPost, "HTTP method covered by the signature")
	f.StringVar(&o.path, "path", cliDefaultPath, "URL path covered by the signature")
	f.StringVar(&o.reqTime, "time", "", "Request-Time value to sign (default: now, epoch milliseconds)")
	c.MarkFlagRequired("client-id")
	c.MarkFlagRequired("key")
	return c
}

func cliSign(cmd *cobra.Command, o cliSignOptions, bodyArg string) error {
	s, err := cliLoadSigner(o.clientID, o.keyFile, o.keyVersion)
	if err != nil {
		return err
	}
	if !cliTokenRE.MatchString(o.method) {
		return errors.New("--method: want an HTTP method such as POST")
	}
	if err := cliCheckPath(o.path); err != nil {
		return err
	}
	reqTime := o.reqTime
	if reqTime == "" {
		reqTime = cliNow()
	} else if _, err := signature.ParseTime(reqTime); err != nil {
		return errors.New("--time: " + strings.TrimPrefix(err.Error(), "Request-Time: "))
	}
	body, err := cliReadBody(cmd, bodyArg)
	if err != nil {
		return err
	}
	cliWarnBody(cmd.ErrOrStderr(), body)
	sig, err := s.header(o.method, o.path, reqTime, body)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "Client-Id: %s\nRequest-Time: %s\nSignature: %s\nContent-Type: %s\n",
		s.clientID, reqTime, sig, cliContentType)
	return err
}

// ---- send ----

type cliSendOptions struct {
	url, clientID, keyFile, keyVersion, verifyKey string
	timeout                                       time.Duration
	sets                                          []string // --set NAME=VALUE, applied before signing
}

func cliSendCommand() *cobra.Command {
	var o cliSendOptions
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
		Args:         cliBodyArg,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cliSend(cmd, o, args[0])
		},
	}
	f := c.Flags()
	f.StringVar(&o.url, "url", "", "gateway URL, e.g. https://gw.example.com"+cliDefaultPath+" (required)")
	f.StringVar(&o.clientID, "client-id", "", "Client-Id the key belongs to (required)")
	f.StringVar(&o.keyFile, "key", "", "private key file to sign with (required)")
	f.StringVar(&o.keyVersion, "key-version", cliDefaultKeyVer, "keyVersion of the key, as registered with the gateway")
	f.StringVar(&o.verifyKey, "verify-key", "", "gateway public key file to verify the reply's Signature with")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up when the whole exchange takes longer (the SDKs use 30s)")
	f.StringArrayVar(&o.sets, "set", nil, cliSetUsage)
	c.MarkFlagRequired("url")
	c.MarkFlagRequired("client-id")
	c.MarkFlagRequired("key")
	return c
}

// cliEnvelope is the part of the reply envelope send reports on.
type cliEnvelope struct {
	Result *struct {
		ResultCode   string `json:"resultCode"`
		ResultStatus string `json:"resultStatus"`
	} `json:"result"`
}

func cliSend(cmd *cobra.Command, o cliSendOptions, bodyArg string) error {
	out, warn := cmd.OutOrStdout(), cmd.ErrOrStderr()

	// Every local mistake is reported before anything goes on the wire.
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("--url: want an absolute http:// or https:// URL, e.g. http://127.0.0.1:8080" + cliDefaultPath)
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	s, err := cliLoadSigner(o.clientID, o.keyFile, o.keyVersion)
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
	body, err := cliReadBody(cmd, bodyArg)
	if err != nil {
		return err
	}
	if body, err = cliSetFields(body, o.sets); err != nil {
		return err
	}
	cliWarnBody(warn, body)
	reqTime := cliNow()
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
	req.Header.Set("Content-Type", cliContentType)
	req.Header.Set("Client-Id", s.clientID)
	req.Header.Set("Request-Time", reqTime)
	req.Header.Set("Signature", sig)
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
	raw, err := io.ReadAll(io.LimitReader(resp.Body, cliMaxReply+1))
	if err != nil {
		return fmt.Errorf("send: reading the reply from %s: %w", u.Redacted(), err)
	}
	if len(raw) > cliMaxReply {
		return fmt.Errorf("send: reply from %s is larger than %d bytes; not the order-sync gateway?", u.Redacted(), cliMaxReply)
	}

	for _, name := range []string{"Response-Time", "Client-Id", "Tracer-Id", "Signature"} {
		if v := resp.Header.Get(name); v != "" {
			fmt.Fprintf(out, "< %s: %s\n", name, v)
		}
	}
	if resp.StatusCode != http.StatusOK {
		cliPrintJSON(out, raw)
		return fmt.Errorf("send: HTTP %s from %s; the gateway answers every result, errors included, with 200",
			resp.Status, u.Redacted())
	}

	var env cliEnvelope
	var envErr error
	if json.Unmarshal(raw, &env) != nil || env.Result == nil || env.Result.ResultCode == "" {
		envErr = errors.New("send: the reply is not an order-sync envelope (no result.resultCode)")
	}

	var verifyErr error
	if verifyKey != nil {
		respSig := resp.Header.Get("Signature")
		switch {
		case respSig != "":
			verifyErr = cliVerifyLikeGoSDK(verifyKey, path, resp.Header, raw, o.verifyKey)
			if verifyErr == nil {
				fmt.Fprintln(out, "signature: verified")
			}
		case envErr == nil && (env.Result.ResultStatus == "F" || env.Result.ResultStatus == "U"):
			fmt.Fprintf(warn, "warning: the reply has no Signature header; accepted because resultStatus is %s, as the official SDKs do\n",
				env.Result.ResultStatus)
		default:
			verifyErr = errors.New("send: --verify-key is set but the reply has no Signature header (the SDKs accept that only for resultStatus F or U)")
		}
		if got := resp.Header.Get("Client-Id"); got != "" && got != s.clientID {
			fmt.Fprintf(warn, "warning: the reply's Client-Id header differs from --client-id\n")
		}
	}
	cliPrintJSON(out, raw)
	if verifyErr != nil {
		return verifyErr
	}
	if envErr != nil {
		return envErr
	}
	_, err = fmt.Fprintf(out, "%s/%s\n", env.Result.ResultCode, env.Result.ResultStatus)
	return err
}

// cliVerifyLikeGoSDK checks a reply signature the way the official Go SDK
// does, deliberately without the leniency of signature.ParseHeader: the
// point of --verify-key is to tell whether real SDK clients will accept the
// reply, so a raw '+' that their query-style unescape turns into a space
// must fail here too.
func cliVerifyLikeGoSDK(pub *rsa.PublicKey, path string, h http.Header, body []byte, keyFile string) error {
	const item = "signature="
	v := h.Get("Signature")
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
	clientID, respTime := h.Get("Client-Id"), h.Get("Response-Time")
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

// ---- order and request ----

type cliAdminOptions struct {
	admin, config, adapter string
}

func (o *cliAdminOptions) register(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&o.admin, "admin", "", "Caddy admin address, host:port or http://host:port (default: from --config, else localhost:2019)")
	f.StringVar(&o.config, "config", "", "config file to read the admin address from, as 'caddy stop' does")
	f.StringVar(&o.adapter, "adapter", "", "name of the config adapter for --config")
}

func cliOrderCommand() *cobra.Command {
	var o cliAdminOptions
	var clientID, bizNo string
	c := &cobra.Command{
		Use:   "order --client-id ID --merchant-biz-no NO [--admin ADDR]",
		Short: "Show an order's state from a running Caddy",
		Long: `
Asks the running Caddy's admin endpoint for the state the gateway keeps for
the order (Client-Id, merchantBizNo): scenario, orderStatus, orderModifyTime,
the orderId and distributeResult sent back on SUCCESS, and the last requestId
that changed it. Prints the JSON; exits 1 with "no such order" when the
gateway has never accepted that order.

The admin address follows Caddy's conventions: --admin, else the admin
address of --config, else localhost:2019 (or CADDY_ADMIN).
`,
		Example: `  caddy alipay-order-sync order --client-id DEMO-CLIENT-ID \
    --merchant-biz-no 00242206688873156335287814888550
  caddy alipay-order-sync order --admin localhost:2020 --client-id C --merchant-biz-no 'A&B 1'`,
		Args:         cliNoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"client_id": {clientID}, "merchant_biz_no": {bizNo}}
			return cliAdminGet(cmd, o, "/alipay_order_sync/order", q, "no such order")
		},
	}
	c.Flags().StringVar(&clientID, "client-id", "", "Client-Id of the caller (required)")
	c.Flags().StringVar(&bizNo, "merchant-biz-no", "", "merchantBizNo of the order (required)")
	o.register(c)
	c.MarkFlagRequired("client-id")
	c.MarkFlagRequired("merchant-biz-no")
	return c
}

func cliRequestCommand() *cobra.Command {
	var o cliAdminOptions
	var clientID, requestID string
	c := &cobra.Command{
		Use:   "request --client-id ID --request-id RID [--admin ADDR]",
		Short: "Show the stored reply for a requestId from a running Caddy",
		Long: `
Asks the running Caddy's admin endpoint for the replay record of
(Client-Id, requestId): in_flight while the request is being processed, or
done with the reply (headers and envelope) that a retry of the same bytes
gets back. U replies are never stored. Prints the JSON; exits 1 with "no such
request" when there is no record (never seen, not final, or expired).

The admin address follows Caddy's conventions: --admin, else the admin
address of --config, else localhost:2019 (or CADDY_ADMIN).
`,
		Example: `  caddy alipay-order-sync request --client-id DEMO-CLIENT-ID \
    --request-id 00242206688873156335287814888550`,
		Args:         cliNoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"client_id": {clientID}, "request_id": {requestID}}
			return cliAdminGet(cmd, o, "/alipay_order_sync/request", q, "no such request")
		},
	}
	c.Flags().StringVar(&clientID, "client-id", "", "Client-Id of the caller (required)")
	c.Flags().StringVar(&requestID, "request-id", "", "requestId of the request (required)")
	o.register(c)
	c.MarkFlagRequired("client-id")
	c.MarkFlagRequired("request-id")
	return c
}

// cliAdminStatusRE picks the status out of caddycmd.AdminAPIRequest's
// error, its only way of reporting one; the body follows it.
var cliAdminStatusRE = regexp.MustCompile(`HTTP (\d{3}): `)

func cliAdminGet(cmd *cobra.Command, o cliAdminOptions, route string, q url.Values, notFound string) error {
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if q.Get(name) == "" {
			return fmt.Errorf("--%s: must not be empty", strings.ReplaceAll(name, "_", "-"))
		}
	}
	addr, err := cliAdminAddress(o)
	if err != nil {
		return err
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, route+"?"+q.Encode(), nil, nil)
	if err != nil {
		m := cliAdminStatusRE.FindStringSubmatchIndex(err.Error())
		if m == nil {
			return fmt.Errorf("admin endpoint %s: %w (is Caddy running? point --admin at its admin address)", addr, err)
		}
		status, _ := strconv.Atoi(err.Error()[m[2]:m[3]])
		detail := cliAdminErrorText(err.Error()[m[1]:])
		if status == http.StatusNotFound && strings.Contains(detail, notFound) {
			return errors.New(notFound)
		}
		return fmt.Errorf("admin endpoint %s: HTTP %d: %s", addr, status, detail)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, cliMaxReply))
	if err != nil {
		return fmt.Errorf("admin endpoint %s: reading the answer: %w", addr, err)
	}
	cliPrintJSON(cmd.OutOrStdout(), raw)
	return nil
}

// cliAdminErrorText unwraps Caddy's {"error": "..."} body.
func cliAdminErrorText(body string) string {
	body = strings.TrimSpace(body)
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && e.Error != "" {
		return e.Error
	}
	return body
}

func cliAdminAddress(o cliAdminOptions) (string, error) {
	if o.admin == "" {
		addr, err := caddycmd.DetermineAdminAPIAddress("", nil, o.config, o.adapter)
		if err != nil {
			return "", fmt.Errorf("--config: %w", err)
		}
		return addr, nil
	}
	if !strings.Contains(o.admin, "://") {
		return o.admin, nil
	}
	// People paste the URL they use with curl; the admin client wants a
	// Caddy network address.
	u, err := url.Parse(o.admin)
	if err != nil || u.Host == "" {
		return "", errors.New("--admin: want host:port or http://host:port")
	}
	if u.Scheme != "http" {
		return "", errors.New("--admin: only plain http:// admin endpoints are supported (as by 'caddy reload'); give the local admin address")
	}
	return u.Host, nil
}

// ---- shared ----

// cliSigner holds a loaded private key; the key never appears in output or
// errors.
type cliSigner struct {
	key                  *rsa.PrivateKey
	clientID, keyVersion string
}

var (
	cliKeyVersionRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)
	cliTokenRE      = regexp.MustCompile(`^[A-Za-z]{1,16}$`)
)

func cliLoadSigner(clientID, keyFile, keyVersion string) (*cliSigner, error) {
	if err := cliCheckClientID(clientID); err != nil {
		return nil, err
	}
	// The gateway rejects any other keyVersion; failing here says which flag.
	if !cliKeyVersionRE.MatchString(keyVersion) {
		return nil, errors.New("--key-version: use 1-32 letters, digits, '.', '_' or '-'")
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	key, err := signature.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", keyFile, err)
	}
	return &cliSigner{key: key, clientID: clientID, keyVersion: keyVersion}, nil
}

func (s *cliSigner) header(method, path, reqTime string, body []byte) (string, error) {
	sig, err := signature.Sign(s.key, method, path, s.clientID, reqTime, body)
	if err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	return signature.FormatHeader(s.keyVersion, sig), nil
}

func cliCheckClientID(id string) error {
	if id == "" {
		return errors.New("--client-id: must not be empty")
	}
	// HTTP trims surrounding blanks from header values, so the gateway would
	// verify a different Client-Id than the one signed.
	if strings.TrimSpace(id) != id {
		return errors.New("--client-id: has leading or trailing spaces")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errors.New("--client-id: contains a control character")
		}
	}
	return nil
}

func cliCheckPath(p string) error {
	if strings.Contains(p, "://") {
		return errors.New("--path: want only the URL path, e.g. " + cliDefaultPath)
	}
	if !strings.HasPrefix(p, "/") {
		return errors.New("--path: must start with '/', e.g. " + cliDefaultPath)
	}
	return nil
}

func cliNow() string { return strconv.FormatInt(time.Now().UnixMilli(), 10) }

// cliReadBody reads BODY_FILE as raw bytes: the signature covers them
// exactly, so nothing is trimmed or re-encoded.
func cliReadBody(cmd *cobra.Command, arg string) ([]byte, error) {
	if arg == "-" {
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("BODY_FILE -: reading stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return nil, fmt.Errorf("BODY_FILE: %w", err)
	}
	return b, nil
}

// cliWarnBody still signs a non-JSON body, since sending one on purpose is
// how the gateway's PARAM_ILLEGAL path gets tested.
func cliWarnBody(w io.Writer, body []byte) {
	if !json.Valid(body) {
		fmt.Fprintln(w, "warning: BODY_FILE is not valid JSON; the gateway will answer PARAM_ILLEGAL")
	}
}

// cliPrintJSON pretty-prints JSON in its original key order; anything else
// is printed as is.
func cliPrintJSON(w io.Writer, raw []byte) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err == nil {
		raw = buf.Bytes()
	}
	if len(raw) == 0 {
		return
	}
	w.Write(raw)
	if raw[len(raw)-1] != '\n' {
		io.WriteString(w, "\n")
	}
}

func cliBodyArg(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("missing BODY_FILE: give the JSON body file to sign, or - for stdin (see %s --help)", cmd.CommandPath())
	}
	return fmt.Errorf("want one BODY_FILE, got %d arguments: %s", len(args), strings.Join(args, " "))
}

func cliNoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q; values go after their flag, e.g. --name VALUE", cmd.CommandPath(), args[0])
	}
	return nil
}
