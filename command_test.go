package ordersync

import (
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func TestCommandRegistered(t *testing.T) {
	c, ok := caddycmd.Commands()["alipay-order-sync"]
	if !ok {
		t.Fatal("alipay-order-sync is not registered with caddycmd")
	}
	if c.CobraFunc == nil || c.Short == "" {
		t.Fatal("registered command lacks CobraFunc or Short")
	}
	cmd := &cobra.Command{Use: c.Name}
	c.CobraFunc(cmd)
	for _, name := range []string{"keygen", "sign", "send", "order", "request"} {
		sub, _, err := cmd.Find([]string{name})
		if err != nil || sub == cmd {
			t.Fatalf("sub-command %s missing: %v", name, err)
		}
		if sub.Short == "" || sub.Long == "" || sub.Example == "" || sub.RunE == nil {
			t.Errorf("%s: want Short, Long, Example and RunE", name)
		}
	}
}
