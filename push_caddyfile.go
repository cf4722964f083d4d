package ordersync

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-alipay/ordersync/signature"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("alipay_order_push", parsePushCaddyfile)
	// Before reverse_proxy, like alipay_order_sync: the handler sends each
	// attempt through the reverse_proxy that follows it.
	httpcaddyfile.RegisterDirectiveOrder("alipay_order_push", httpcaddyfile.Before, "reverse_proxy")
}

func parsePushCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var p PushHandler
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return &p, err
}

// UnmarshalCaddyfile sets up the egress handler from Caddyfile tokens.
// Every sub-directive is a JSON field of PushHandler. Syntax:
//
//	alipay_order_push {
//	    client_id <Client-Id>
//	    private_key_file <path>
//	    private_key <value>
//	    key_version <n>
//	    alipay_public_key_file <path>
//	    alipay_public_key <value>
//	    path <path>
//	    scenario <name> { … }            # as in alipay_order_sync
//	    store bbolt [<path>]
//	    store redis { … }
//	    wait <duration>                 # 0: answer 202 once queued
//	    attempt_timeout <duration>
//	    retry_initial <duration>
//	    retry_max <duration>
//	    max_age <duration>
//	    callback <url> {
//	        secret <value>
//	    }
//	    max_body_size <size>
//	}
func (p *PushHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		// Every option but scenario is given once: a second value would
		// silently win over the first.
		if opt != "scenario" {
			if seen[opt] {
				return d.Errf("%s: given twice", opt)
			}
			seen[opt] = true
		}
		switch opt {
		case "client_id", "private_key_file", "private_key", "key_version",
			"alipay_public_key_file", "alipay_public_key", "path":
			var v string
			if !d.AllArgs(&v) {
				return d.Errf("%s: expected one value", opt)
			}
			switch opt {
			case "client_id":
				p.ClientID = v
			case "private_key_file":
				p.PrivateKeyFile = v
			case "private_key":
				p.PrivateKey = v
			case "key_version":
				if err := signature.CheckKeyVersion(v); err != nil {
					return d.Errf("key_version %q: %v", v, err)
				}
				p.KeyVersion = v
			case "alipay_public_key_file":
				p.AlipayPublicKeyFile = v
			case "alipay_public_key":
				p.AlipayPublicKey = v
			case "path":
				p.Path = v
			}
		case "wait", "attempt_timeout", "retry_initial", "retry_max", "max_age":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			cd := caddy.Duration(dur)
			switch opt {
			case "wait":
				p.Wait = &cd
			case "attempt_timeout":
				p.AttemptTimeout = cd
			case "retry_initial":
				p.RetryInitial = cd
			case "retry_max":
				p.RetryMax = cd
			case "max_age":
				p.MaxAge = cd
			}
		case "max_body_size":
			size, err := sizeArg(d)
			if err != nil {
				return err
			}
			p.MaxBodySize = size
		case "scenario":
			sc, err := unmarshalScenario(d)
			if err != nil {
				return err
			}
			p.Scenarios = append(p.Scenarios, sc)
		case "store":
			raw, err := unmarshalStore(d, p.StoreRaw)
			if err != nil {
				return err
			}
			p.StoreRaw = raw
		case "callback":
			cb, err := unmarshalCallback(d)
			if err != nil {
				return err
			}
			p.Callback = cb
		default:
			return d.Errf("unknown option %q", opt)
		}
	}
	return nil
}

// unmarshalCallback reads `callback <url> { secret <value> }`.
func unmarshalCallback(d *caddyfile.Dispenser) (*PushCallback, error) {
	cb := &PushCallback{}
	if !d.NextArg() {
		return nil, d.Err("callback: expected a URL")
	}
	cb.URL = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return nil, d.Errf("callback: %s: expected one value", opt)
		}
		switch opt {
		case "secret":
			if cb.Secret != "" {
				return nil, d.Err("callback: secret: given twice")
			}
			cb.Secret = v
		default:
			return nil, d.Errf("callback: unknown option %q", opt)
		}
	}
	return cb, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*PushHandler)(nil)
