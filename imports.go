package ordersync

// The store backends register themselves as Caddy modules; importing the
// handler brings both, so `xcaddy build --with` this module is enough.
import (
	_ "github.com/caddy-alipay/ordersync/store/bboltstore"
	_ "github.com/caddy-alipay/ordersync/store/redisstore"
)
