package ordersync

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-alipay/ordersync/internal/cli"
)

// `caddy alipay-order-sync` lives in internal/cli. It is registered here,
// from the module's root package, so that every Caddy binary built with
// this module has it.
func init() {
	caddycmd.RegisterCommand(cli.Command())
}
