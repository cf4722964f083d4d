package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/internal/adminapi"
)

// outboxCommand is `outbox list|show|retry|drop`: the egress handler's
// (alipay_order_push) outbox through the running Caddy's admin endpoint.
// list and show only read; retry and drop change state, and print what
// they changed before the entry.
func outboxCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "outbox <list|show|retry|drop> [flags]",
		Short: "List, show, retry or drop the egress outbox's entries of a running Caddy",
		Long: `
The order syncs the alipay_order_push handler has queued for AlipayHK, read
and acted on through the running Caddy's admin endpoint:

  list   the entries of a client_id, queued ones oldest first (--state filters)
  show   one entry (--request-id) or one order's lane (--merchant-biz-no):
         what AlipayHK last accepted and the entries queued after it
  retry  CHANGES STATE: a queued entry is made due now; a failed or expired
         one is queued again at the tail of its lane, if the order's state
         machine still allows its status
  drop   CHANGES STATE: a queued entry ends as failed ("dropped by
         operator"), its lane goes on with the next entry, and its callback
         is sent

retry and drop print a sentence saying what they changed, then the entry.
` + adminAddressHelp,
		Args:         cobra.ArbitraryArgs,
		SilenceUsage: true,
		RunE:         subcommands("list, show, retry or drop"),
	}
	c.SuggestionsMinimumDistance = 2
	c.AddCommand(outboxListCommand(), outboxShowCommand(),
		outboxActionCommand(adminapi.PushRetry, "Make a queued entry due now, or queue a failed or expired one again (changes state)", `
Retries an entry of the egress outbox. A queued entry is made due now (it is
still sent only after the entries before it in its lane are final). A failed
or expired entry is queued again at the tail of its lane, with its attempts
and reply cleared and max_age counting anew, if the order's state machine
still allows its status after what AlipayHK accepted and what is queued;
otherwise nothing changes and the error says why. A succeeded entry cannot be
retried. Prints what changed, then the entry.
`),
		outboxActionCommand(adminapi.PushDrop, "End a queued entry as failed and unblock its lane (changes state)", `
Drops a queued entry of the egress outbox: it ends as failed with lastError
"dropped by operator", leaves its lane (the lane goes on with its next
entry), and its callback is sent. An attempt in flight for it is not
recorded. A final entry cannot be dropped. Prints what changed, then the
entry.
`))
	return c
}

func outboxListCommand() *cobra.Command {
	var a adminFlags
	var clientID, state string
	var limit int
	c := &cobra.Command{
		Use:   "list --client-id ID [--state STATE] [--limit N] [--admin ADDR]",
		Short: "List the outbox entries of a client_id",
		Long: `
Lists the egress outbox's entries of a client_id: queued ones oldest first,
then final ones, the latest ended first. --state keeps one state: queued,
succeeded, failed or expired. Prints JSON.
` + adminAddressHelp,
		Example:      "  caddy alipay-order-sync outbox list --client-id DEMO-CLIENT-ID --state queued",
		Args:         noArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientID == "" {
				return errors.New("--client-id: must not be empty")
			}
			switch state {
			case "", "queued", "succeeded", "failed", "expired":
			default:
				return fmt.Errorf("--state: want queued, succeeded, failed or expired, got %q", state)
			}
			if limit < 1 || limit > adminapi.MaxListLimit {
				return fmt.Errorf("--limit: want 1 to %d", adminapi.MaxListLimit)
			}
			q := url.Values{adminapi.ParamLimit: {strconv.Itoa(limit)}}
			if state != "" {
				q.Set(adminapi.ParamState, state)
			}
			return a.call(cmd.OutOrStdout(), http.MethodGet, adminapi.PushPath(adminapi.PushEntries, clientID)+"?"+q.Encode(), adminapi.NoSuchEntry)
		},
	}
	c.Flags().StringVar(&clientID, "client-id", "", "client_id of the alipay_order_push handler (required)")
	c.MarkFlagRequired("client-id")
	c.Flags().StringVar(&state, "state", "", "only entries in this state: queued, succeeded, failed or expired")
	c.Flags().IntVar(&limit, "limit", adminapi.DefaultListLimit, "at most this many entries")
	a.register(c)
	return c
}

func outboxShowCommand() *cobra.Command {
	var a adminFlags
	var clientID, requestID, bizNo string
	c := &cobra.Command{
		Use:   "show --client-id ID (--request-id RID | --merchant-biz-no NO) [--admin ADDR]",
		Short: "Show an outbox entry, or an order's lane",
		Long: `
With --request-id: the outbox entry (state, attempts, lastError, next attempt,
AlipayHK's reply once final, the callback's state). With --merchant-biz-no:
the order's lane, what AlipayHK last accepted for it and the entries queued
after that, in the order they are delivered. Prints JSON; exits 1 with "no
such outbox entry" for an unknown requestId.
` + adminAddressHelp,
		Example: `  caddy alipay-order-sync outbox show --client-id DEMO-CLIENT-ID --request-id 4b8e0c…
  caddy alipay-order-sync outbox show --client-id DEMO-CLIENT-ID --merchant-biz-no CP-1`,
		Args:         noArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientID == "" {
				return errors.New("--client-id: must not be empty")
			}
			switch {
			case (requestID == "") == (bizNo == ""):
				return errors.New("give exactly one of --request-id and --merchant-biz-no")
			case requestID != "":
				return a.call(cmd.OutOrStdout(), http.MethodGet, adminapi.PushPath(adminapi.PushEntry, clientID, requestID), adminapi.NoSuchEntry)
			default:
				return a.call(cmd.OutOrStdout(), http.MethodGet, adminapi.PushPath(adminapi.PushLane, clientID, bizNo), adminapi.NoSuchEntry)
			}
		},
	}
	c.Flags().StringVar(&clientID, "client-id", "", "client_id of the alipay_order_push handler (required)")
	c.MarkFlagRequired("client-id")
	c.Flags().StringVar(&requestID, "request-id", "", "requestId of the entry")
	c.Flags().StringVar(&bizNo, "merchant-biz-no", "", "merchantBizNo of the order, for its lane")
	a.register(c)
	return c
}

// outboxActionCommand is retry or drop: a POST that changes state.
func outboxActionCommand(action, short, long string) *cobra.Command {
	var a adminFlags
	var clientID, requestID string
	c := &cobra.Command{
		Use:          action + " --client-id ID --request-id RID [--admin ADDR]",
		Short:        short,
		Long:         long + adminAddressHelp,
		Example:      "  caddy alipay-order-sync outbox " + action + " --client-id DEMO-CLIENT-ID --request-id 4b8e0c…",
		Args:         noArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientID == "" || requestID == "" {
				return errors.New("--client-id and --request-id: must not be empty")
			}
			raw, err := a.fetch(http.MethodPost, adminapi.PushPath(adminapi.PushEntry, clientID, requestID, action), adminapi.NoSuchEntry)
			if err != nil {
				return err
			}
			var v adminapi.PushActionView
			if err := json.Unmarshal(raw, &v); err != nil || v.Changed == "" {
				return fmt.Errorf("admin endpoint: unexpected answer to %s: %.200s", action, raw)
			}
			w := cmd.OutOrStdout()
			io.WriteString(w, v.Changed+"\n")
			var entry bytes.Buffer
			enc := json.NewEncoder(&entry)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(v.Entry)
			printJSON(w, entry.Bytes())
			return nil
		},
	}
	c.Flags().StringVar(&clientID, "client-id", "", "client_id of the alipay_order_push handler (required)")
	c.Flags().StringVar(&requestID, "request-id", "", "requestId of the entry (required)")
	c.MarkFlagRequired("client-id")
	c.MarkFlagRequired("request-id")
	a.register(c)
	return c
}
