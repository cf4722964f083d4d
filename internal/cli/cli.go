// Package cli is `caddy alipay-order-sync`: key pairs, signed requests and
// look-ups through Caddy's admin endpoint, for the alipay_order_sync
// handler. The module root registers Command with Caddy.
//
// One file per concern: keygen.go; sign.go, with the key flags and the
// signer that send shares; send.go, with set.go (--set edits the body
// before signing) and verify.go (the reply checked as the Alipay Go SDK
// does); admin.go, the look-ups, each a declaration for one admin route.
// The rules themselves are not here: signing, header and time formats, key
// parsing and the keyVersion syntax come from package signature, the admin
// routes' paths, parameters and views from internal/adminapi.
package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
)

// Command returns `caddy alipay-order-sync`, for caddycmd.RegisterCommand.
// Its CobraFunc is the one that builds the sub-commands, so tests that
// build their command tree from it run exactly what Caddy runs.
func Command() caddycmd.Command {
	return caddycmd.Command{
		Name:  "alipay-order-sync",
		Usage: "<keygen|sign|send|order|request|outbox> [flags]",
		Short: "Keys, signed requests and order look-ups for the AlipayHK order-sync gateway",
		Long: `
Tools for the alipay_order_sync handler:

  keygen   generate an RSA-2048 key pair (PEM files and the SDKs' base64 forms)
  sign     print the Client-Id, Request-Time and Signature headers for a body
  send     sign a body, POST it to the gateway and check the signed reply
  order    show an order's state through Caddy's admin endpoint
  request  show a stored reply for a requestId through Caddy's admin endpoint
  outbox   list, show, retry or drop the egress handler's outbox entries
           (alipay_order_push) through Caddy's admin endpoint

Run 'caddy alipay-order-sync <sub-command> --help' for the flags of each.
`,
		CobraFunc: setup,
	}
}

const (
	defaultPath = orderflow.SyncPath
	contentType = orderflow.ContentTypeJSON
	// maxReply bounds what is read back from the gateway or the admin
	// endpoint: their answers are a few KiB, so anything near this is not
	// them talking.
	maxReply = 8 << 20
)

// setup fills in the cobra command Caddy made from Command.
func setup(cmd *cobra.Command) {
	cmd.SilenceUsage = true
	// SuggestionsFor matches nothing until this is set; cobra sets it lazily
	// only on the path it uses for root commands.
	cmd.SuggestionsMinimumDistance = 2
	// Cobra only rejects unknown sub-commands of the root command; below it,
	// a typo would silently print help and exit 0.
	cmd.RunE = subcommands("keygen, sign, send, order, request or outbox")
	cmd.AddCommand(keygenCommand(), signCommand(), sendCommand(),
		orderCommand(), requestCommand(), outboxCommand())
}

// subcommands is the RunE of a command that only groups sub-commands:
// help without arguments, and an error naming the sub-commands (or the
// nearest one) for an unknown one.
func subcommands(want string) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown sub-command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		} else {
			msg += "; want " + want
		}
		return errors.New(msg)
	}
}

// printJSON pretty-prints JSON in its original key order; anything else is
// printed as is.
func printJSON(w io.Writer, raw []byte) {
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

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q; values go after their flag, e.g. --name VALUE", cmd.CommandPath(), args[0])
	}
	return nil
}
