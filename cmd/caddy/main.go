// Command caddy is Caddy with the standard modules plus alipay_order_sync,
// for running the gateway straight from a checkout:
//
//	go run ./cmd/caddy run --config Caddyfile.example
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-alipay/ordersync"
)

func main() {
	caddycmd.Main()
}
