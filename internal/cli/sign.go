package cli

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/signature"
)

type signOptions struct {
	key                   keyFlags
	method, path, reqTime string
}

func signCommand() *cobra.Command {
	var o signOptions
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
		Args:         bodyArg,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return sign(cmd, o, args[0])
		},
	}
	o.key.register(c)
	f := c.Flags()
	f.StringVar(&o.method, "method", http.MethodPost, "HTTP method covered by the signature")
	f.StringVar(&o.path, "path", defaultPath, "URL path covered by the signature")
	f.StringVar(&o.reqTime, "time", "", "Request-Time value to sign (default: now, epoch milliseconds)")
	return c
}

var methodRE = regexp.MustCompile(`^[A-Za-z]{1,16}$`)

func sign(cmd *cobra.Command, o signOptions, bodyFile string) error {
	s, err := o.key.signer()
	if err != nil {
		return err
	}
	if !methodRE.MatchString(o.method) {
		return errors.New("--method: want an HTTP method such as POST")
	}
	if err := checkPath(o.path); err != nil {
		return err
	}
	reqTime := o.reqTime
	if reqTime == "" {
		reqTime = signature.FormatEpochMillis(time.Now())
	} else if _, err := signature.ParseTime(reqTime); err != nil {
		return errors.New("--time: " + strings.TrimPrefix(err.Error(), "Request-Time: "))
	}
	body, err := readBody(cmd, bodyFile)
	if err != nil {
		return err
	}
	warnBody(cmd.ErrOrStderr(), body)
	sig, err := s.header(o.method, o.path, reqTime, body)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "Client-Id: %s\nRequest-Time: %s\nSignature: %s\nContent-Type: %s\n",
		s.clientID, reqTime, sig, contentType)
	return err
}

// keyFlags say who signs and with which key, for sign and send.
type keyFlags struct {
	clientID, file, version string
}

func (k *keyFlags) register(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&k.clientID, "client-id", "", "Client-Id the key belongs to (required)")
	f.StringVar(&k.file, "key", "", "private key file to sign with (required)")
	f.StringVar(&k.version, "key-version", signature.DefaultKeyVersion, "keyVersion of the key, as registered with the gateway")
	c.MarkFlagRequired("client-id")
	c.MarkFlagRequired("key")
}

// signer holds a loaded private key; the key never appears in output or
// errors.
type signer struct {
	key                  *rsa.PrivateKey
	clientID, keyVersion string
}

// signer checks the flags and loads the key.
func (k keyFlags) signer() (*signer, error) {
	if err := checkClientID(k.clientID); err != nil {
		return nil, err
	}
	// The gateway refuses a keyVersion outside the rule; failing here says
	// which flag.
	if err := signature.CheckKeyVersion(k.version); err != nil {
		return nil, fmt.Errorf("--key-version: %w", err)
	}
	data, err := os.ReadFile(k.file)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	key, err := signature.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", k.file, err)
	}
	return &signer{key: key, clientID: k.clientID, keyVersion: k.version}, nil
}

// header returns the Signature header value for one request.
func (s *signer) header(method, path, reqTime string, body []byte) (string, error) {
	sig, err := signature.Sign(s.key, method, path, s.clientID, reqTime, body)
	if err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	return signature.FormatHeader(s.keyVersion, sig), nil
}

func checkClientID(id string) error {
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

func checkPath(p string) error {
	if strings.Contains(p, "://") {
		return errors.New("--path: want only the URL path, e.g. " + defaultPath)
	}
	if !strings.HasPrefix(p, "/") {
		return errors.New("--path: must start with '/', e.g. " + defaultPath)
	}
	return nil
}

// readBody reads BODY_FILE as raw bytes: the signature covers them exactly,
// so nothing is trimmed or re-encoded.
func readBody(cmd *cobra.Command, arg string) ([]byte, error) {
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

// warnBody still lets a non-JSON body be signed, since sending one on
// purpose is how the gateway's PARAM_ILLEGAL path gets tested.
func warnBody(w io.Writer, body []byte) {
	if !json.Valid(body) {
		fmt.Fprintln(w, "warning: BODY_FILE is not valid JSON; the gateway will answer PARAM_ILLEGAL")
	}
}

func bodyArg(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("missing BODY_FILE: give the JSON body file to sign, or - for stdin (see %s --help)", cmd.CommandPath())
	}
	return fmt.Errorf("want one BODY_FILE, got %d arguments: %s", len(args), strings.Join(args, " "))
}
