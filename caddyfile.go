package ordersync

import (
	"encoding/json"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/signature"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("alipay_order_sync", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("alipay_order_sync", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	alipay_order_sync {
//	    client <client-id> {
//	        public_key_file <key-version> <path>
//	        public_key <key-version> <value>
//	        merchants <merchantId>...
//	    }
//	    insecure_skip_verify
//	    request_time_window <duration>
//	    sign_responses {
//	        private_key_file <path>
//	        private_key <value>
//	        key_version <n>
//	    }
//	    scenario <name> {
//	        merchant_biz_type <value>
//	        match_ext <extInfo-key> <value>
//	        schema_file <path>
//	        statuses <STATUS>...
//	        end <STATUS>...
//	        repeatable <STATUS>...
//	        only_from <STATUS> <FROM>...
//	        next_must_be <STATUS> <NEXT>
//	    }
//	    max_body_size <size>
//	    store bbolt [<path>]
//	    store redis { address … username … password … db … key_prefix … tls }
//	    idempotency_ttl <duration>
//	    map_status <status|4xx|5xx> <RESULT_CODE>
//	    upstream_timeout <duration>
//	    claim_lease <duration>
//	    offline
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "client":
			cc, err := unmarshalClient(d)
			if err != nil {
				return err
			}
			h.Clients = append(h.Clients, cc)
		case "insecure_skip_verify":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.InsecureSkipVerify = true
		case "offline":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Offline = true
		case "request_time_window":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			cd := caddy.Duration(dur)
			h.RequestTimeWindow = &cd
		case "idempotency_ttl":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.IdempotencyTTL = caddy.Duration(dur)
		case "upstream_timeout":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.UpstreamTimeout = caddy.Duration(dur)
		case "claim_lease":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.ClaimLease = caddy.Duration(dur)
		case "max_body_size":
			size, err := sizeArg(d)
			if err != nil {
				return err
			}
			h.MaxBodySize = size
		case "sign_responses":
			sc, err := unmarshalSign(d)
			if err != nil {
				return err
			}
			h.SignResponses = sc
		case "scenario":
			sc, err := unmarshalScenario(d)
			if err != nil {
				return err
			}
			h.Scenarios = append(h.Scenarios, sc)
		case "store":
			raw, err := unmarshalStore(d, h.StoreRaw)
			if err != nil {
				return err
			}
			h.StoreRaw = raw
		case "map_status":
			var key, code string
			if !d.AllArgs(&key, &code) {
				return d.ArgErr()
			}
			// The JSON config's rule, checked here too so that the error
			// points at the line.
			if _, err := orderflow.NewStatusMap(map[string]string{key: code}); err != nil {
				return d.Err(err.Error())
			}
			if h.MapStatus == nil {
				h.MapStatus = map[string]string{}
			}
			h.MapStatus[key] = code
		default:
			return d.Errf("unknown option %q", d.Val())
		}
	}
	return nil
}

// unmarshalStore reads a `store bbolt [<path>]` or `store redis {…}` line
// into the JSON of the store module. It is shared by both handlers, which
// take the same store modules; prev is what an earlier store line gave.
func unmarshalStore(d *caddyfile.Dispenser, prev json.RawMessage) (json.RawMessage, error) {
	if prev != nil {
		return nil, d.Err("store: given twice")
	}
	if !d.NextArg() {
		return nil, d.Err("store: expected a backend: bbolt or redis")
	}
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, storeNamespace+"."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, "backend", name, nil), nil
}

// sizeArg reads the one size argument of the option at d (64KiB, 1MB…),
// which must not be 0.
func sizeArg(d *caddyfile.Dispenser) (int64, error) {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	size, err := humanize.ParseBytes(s)
	if err != nil || size == 0 {
		return 0, d.Errf("%s: %q is not a size like 64KiB", name, s)
	}
	return int64(size), nil
}

func durationArg(d *caddyfile.Dispenser) (time.Duration, error) {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("%s: %v", name, err)
	}
	if dur < 0 {
		return 0, d.Errf("%s: must not be negative", name)
	}
	return dur, nil
}

func unmarshalClient(d *caddyfile.Dispenser) (ClientConfig, error) {
	var cc ClientConfig
	if !d.NextArg() {
		return cc, d.Err("client: expected a client id")
	}
	cc.ID = d.Val()
	if d.NextArg() {
		return cc, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "public_key_file", "public_key":
			opt := d.Val()
			var version, value string
			if !d.AllArgs(&version, &value) {
				return cc, d.Errf("client %s: %s: expected <key-version> <value>", cc.ID, opt)
			}
			if err := signature.CheckKeyVersion(version); err != nil {
				return cc, d.Errf("client %s: %s %q: %v", cc.ID, opt, version, err)
			}
			m := &cc.PublicKeys
			if opt == "public_key_file" {
				m = &cc.PublicKeyFiles
			}
			if *m == nil {
				*m = map[string]string{}
			}
			if _, dup := (*m)[version]; dup {
				return cc, d.Errf("client %s: %s: key version %s given twice", cc.ID, opt, version)
			}
			(*m)[version] = value
		case "merchants":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return cc, d.Errf("client %s: merchants: expected at least one merchantId", cc.ID)
			}
			cc.Merchants = append(cc.Merchants, args...)
		default:
			return cc, d.Errf("client %s: unknown option %q", cc.ID, d.Val())
		}
	}
	return cc, nil
}

func unmarshalSign(d *caddyfile.Dispenser) (*SignConfig, error) {
	sc := &SignConfig{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return nil, d.Errf("sign_responses: %s: expected one value", opt)
		}
		switch opt {
		case "private_key_file":
			sc.PrivateKeyFile = v
		case "private_key":
			sc.PrivateKey = v
		case "key_version":
			if err := signature.CheckKeyVersion(v); err != nil {
				return nil, d.Errf("sign_responses: key_version %q: %v", v, err)
			}
			sc.KeyVersion = v
		default:
			return nil, d.Errf("sign_responses: unknown option %q", opt)
		}
	}
	return sc, nil
}

func unmarshalScenario(d *caddyfile.Dispenser) (ScenarioConfig, error) {
	var sc ScenarioConfig
	if !d.NextArg() {
		return sc, d.Err("scenario: expected a name")
	}
	sc.Name = d.Val()
	if d.NextArg() {
		return sc, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		need := func(min, max int) error {
			if len(args) < min || (max >= 0 && len(args) > max) {
				return d.Errf("scenario %s: %s: wrong number of arguments", sc.Name, opt)
			}
			return nil
		}
		switch opt {
		case "merchant_biz_type":
			if err := need(1, 1); err != nil {
				return sc, err
			}
			sc.MerchantBizType = args[0]
		case "match_ext":
			if err := need(2, 2); err != nil {
				return sc, err
			}
			if sc.MatchExt == nil {
				sc.MatchExt = map[string]string{}
			}
			sc.MatchExt[args[0]] = args[1]
		case "schema_file":
			if err := need(1, 1); err != nil {
				return sc, err
			}
			sc.SchemaFile = args[0]
		case "statuses":
			if err := need(1, -1); err != nil {
				return sc, err
			}
			sc.Statuses = append(sc.Statuses, args...)
		case "end":
			if err := need(1, -1); err != nil {
				return sc, err
			}
			sc.End = append(sc.End, args...)
		case "repeatable":
			if err := need(1, -1); err != nil {
				return sc, err
			}
			sc.Repeatable = append(sc.Repeatable, args...)
		case "only_from":
			if err := need(2, -1); err != nil {
				return sc, err
			}
			if sc.OnlyFrom == nil {
				sc.OnlyFrom = map[string][]string{}
			}
			sc.OnlyFrom[args[0]] = append(sc.OnlyFrom[args[0]], args[1:]...)
		case "next_must_be":
			if err := need(2, 2); err != nil {
				return sc, err
			}
			if sc.NextMustBe == nil {
				sc.NextMustBe = map[string]string{}
			}
			sc.NextMustBe[args[0]] = args[1]
		default:
			return sc, d.Errf("scenario %s: unknown option %q", sc.Name, opt)
		}
	}
	return sc, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
