package caddytest

import (
	"fmt"
	"strings"
	"testing"
)

// TestSignedPathSurvivesHandlePath: a route that strips a prefix before the
// handler still verifies (and signs) over the path the caller sent.
func TestSignedPathSurvivesHandlePath(t *testing.T) {
	up := issuingUpstream(t)
	k := demoKeys(t)
	in := startCaddy(t, func(in *instance) string {
		return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}
http://127.0.0.1:%d {
	handle_path /edge/* {
		alipay_order_sync {
			client %s {
				public_key_file 1 %s
			}
			sign_responses {
				private_key_file %s
			}
			store bbolt %s/orders.db
		}
		reverse_proxy %s
	}
}
`, in.adminPort, in.port, testClient, k.merchantPub, k.gatewayPriv, in.dataDir, up.addr())
	}, caddyOptions{})
	url := strings.Replace(in.url(), syncPath, "/edge"+syncPath, 1)
	c := signed(t, newOrder().bytes())
	c.path = "/edge" + syncPath
	a := send(t, url, c).expect(t, "SUCCESS", "S")
	sdkVerifies(t, a, k.gatewayPublic)
	if got := up.last(t).path; got != syncPath {
		t.Errorf("upstream path = %q, want the stripped %q", got, syncPath)
	}
}
