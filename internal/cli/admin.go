package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/internal/adminapi"
)

func orderCommand() *cobra.Command {
	return lookup{
		use:   "order --client-id ID --merchant-biz-no NO [--admin ADDR]",
		short: "Show an order's state from a running Caddy",
		long: `
Asks the running Caddy's admin endpoint for the state the gateway keeps for
the order (Client-Id, merchantBizNo): scenario, orderStatus, orderModifyTime,
the orderId and distributeResult sent back on SUCCESS, and the last requestId
that changed it. Prints the JSON; exits 1 with "no such order" when the
gateway has never accepted that order.
`,
		example: `  caddy alipay-order-sync order --client-id DEMO-CLIENT-ID \
    --merchant-biz-no 00242206688873156335287814888550
  caddy alipay-order-sync order --admin localhost:2020 --client-id C --merchant-biz-no 'A&B 1'`,
		route: adminapi.OrderRoute,
		params: []param{
			{"client-id", adminapi.ParamClientID, "Client-Id of the caller (required)"},
			{"merchant-biz-no", adminapi.ParamMerchantBizNo, "merchantBizNo of the order (required)"},
		},
		notFound: adminapi.NoSuchOrder,
	}.command()
}

func requestCommand() *cobra.Command {
	return lookup{
		use:   "request --client-id ID --request-id RID [--admin ADDR]",
		short: "Show the stored reply for a requestId from a running Caddy",
		long: `
Asks the running Caddy's admin endpoint for the replay record of
(Client-Id, requestId): in_flight while the request is being processed, or
done with the reply (headers and envelope) that a retry of the same bytes
gets back. U replies are never stored. Prints the JSON; exits 1 with "no such
request" when there is no record (never seen, not final, or expired).
`,
		example: `  caddy alipay-order-sync request --client-id DEMO-CLIENT-ID \
    --request-id 00242206688873156335287814888550`,
		route: adminapi.RequestRoute,
		params: []param{
			{"client-id", adminapi.ParamClientID, "Client-Id of the caller (required)"},
			{"request-id", adminapi.ParamRequestID, "requestId of the request (required)"},
		},
		notFound: adminapi.NoSuchRequest,
	}.command()
}

// lookup declares a read-only sub-command over one admin route: each param
// is a required, non-empty flag sent as a query parameter of a GET on route,
// and the JSON answer is printed in its own key order. A 404 whose error is
// notFound becomes exactly that error, which scripts test for. A new admin
// look-up is one more declaration; a route with path parameters would add a
// way to build the path from the flags, next to route.
type lookup struct {
	use, short, long, example string
	route                     string
	params                    []param
	notFound                  string
}

// param is a required flag and the query parameter it fills.
type param struct{ flag, query, usage string }

// adminAddressHelp ends the help of every admin sub-command.
const adminAddressHelp = `
The admin address follows Caddy's conventions: --admin, else the admin
address of --config, else localhost:2019 (or CADDY_ADMIN).
`

func (l lookup) command() *cobra.Command {
	var a adminFlags
	values := make([]string, len(l.params))
	c := &cobra.Command{
		Use:          l.use,
		Short:        l.short,
		Long:         l.long + adminAddressHelp,
		Example:      l.example,
		Args:         noArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for i, p := range l.params {
				// Required flags may still be given as "".
				if values[i] == "" {
					return fmt.Errorf("--%s: must not be empty", p.flag)
				}
				q.Set(p.query, values[i])
			}
			return a.call(cmd.OutOrStdout(), http.MethodGet, l.route+"?"+q.Encode(), l.notFound)
		},
	}
	for i, p := range l.params {
		c.Flags().StringVar(&values[i], p.flag, "", p.usage)
		c.MarkFlagRequired(p.flag)
	}
	a.register(c)
	return c
}

// adminFlags find Caddy's admin endpoint as Caddy's own commands (stop,
// reload) do.
type adminFlags struct {
	admin, config, adapter string
}

func (a *adminFlags) register(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&a.admin, "admin", "", "Caddy admin address, host:port or http://host:port (default: from --config, else localhost:2019)")
	f.StringVar(&a.config, "config", "", "config file to read the admin address from, as 'caddy stop' does")
	f.StringVar(&a.adapter, "adapter", "", "name of the config adapter for --config")
}

// statusRE picks the status out of caddycmd.AdminAPIRequest's error, its
// only way of reporting one; the body follows it.
var statusRE = regexp.MustCompile(`HTTP (\d{3}): `)

// call sends method target (path and query) to the admin endpoint and
// prints the JSON answer to w. A 404 whose error is notFound returns
// exactly notFound; any other failure says where it asked and what came
// back.
func (a adminFlags) call(w io.Writer, method, target, notFound string) error {
	raw, err := a.fetch(method, target, notFound)
	if err != nil {
		return err
	}
	printJSON(w, raw)
	return nil
}

// fetch is call without the printing: it returns the answer's body.
func (a adminFlags) fetch(method, target, notFound string) ([]byte, error) {
	addr, err := a.address()
	if err != nil {
		return nil, err
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, target, nil, nil)
	if err != nil {
		m := statusRE.FindStringSubmatchIndex(err.Error())
		if m == nil {
			return nil, fmt.Errorf("admin endpoint %s: %w (is Caddy running? point --admin at its admin address)", addr, err)
		}
		status, _ := strconv.Atoi(err.Error()[m[2]:m[3]])
		detail := errorText(err.Error()[m[1]:])
		if status == http.StatusNotFound && strings.Contains(detail, notFound) {
			return nil, errors.New(notFound)
		}
		return nil, fmt.Errorf("admin endpoint %s: HTTP %d: %s", addr, status, detail)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("admin endpoint %s: reading the answer: %w", addr, err)
	}
	return raw, nil
}

// errorText unwraps Caddy's {"error": "..."} body.
func errorText(body string) string {
	body = strings.TrimSpace(body)
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && e.Error != "" {
		return e.Error
	}
	return body
}

func (a adminFlags) address() (string, error) {
	if a.admin == "" {
		addr, err := caddycmd.DetermineAdminAPIAddress("", nil, a.config, a.adapter)
		if err != nil {
			return "", fmt.Errorf("--config: %w", err)
		}
		return addr, nil
	}
	if !strings.Contains(a.admin, "://") {
		return a.admin, nil
	}
	// People paste the URL they use with curl; the admin client wants a
	// Caddy network address.
	u, err := url.Parse(a.admin)
	if err != nil || u.Host == "" {
		return "", errors.New("--admin: want host:port or http://host:port")
	}
	if u.Scheme != "http" {
		return "", errors.New("--admin: only plain http:// admin endpoints are supported (as by 'caddy reload'); give the local admin address")
	}
	return u.Host, nil
}
