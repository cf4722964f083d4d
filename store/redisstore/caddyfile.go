package redisstore

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens, positioned
// on "redis" (the handler's store directive passes it here):
//
//	store redis [<host:port>] {
//	    address <host:port>
//	    username <u>
//	    password <p>
//	    db <n>
//	    key_prefix <prefix>
//	    tls
//	}
//
// The address may be given inline or in the block, not both. Placeholders
// are kept as written here and resolved in Provision, so {env.*} secrets
// never end up in the adapted JSON.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "redis"
	if d.NextArg() {
		s.Address = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		dir := d.Val()
		switch dir {
		case "address", "username", "password", "key_prefix":
			if !d.NextArg() {
				return d.ArgErr()
			}
			v := d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			switch dir {
			case "address":
				if s.Address != "" {
					return d.Err("address given twice")
				}
				s.Address = v
			case "username":
				s.Username = v
			case "password":
				s.Password = v
			case "key_prefix":
				s.KeyPrefix = v
			}
		case "db":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 0 {
				return d.Errf("db: want an integer >= 0, got %q", d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			s.DB = n
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.TLS = true
		default:
			return d.Errf("unrecognized redis store option %q", dir)
		}
	}
	return nil
}
