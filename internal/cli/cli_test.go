package cli_test

import (
	"bytes"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/internal/cli"
	"github.com/caddy-alipay/ordersync/signature"
)

// run runs `caddy alipay-order-sync ARGS` through a command tree built as
// Caddy builds it (caddyCmdToCobra + CobraFunc), and returns stdout, stderr
// and the error that makes Caddy exit non-zero.
func run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	c := cli.Command()
	cmd := &cobra.Command{
		Use:   c.Name + " " + c.Usage,
		Short: c.Short,
		Long:  c.Long,
	}
	c.CobraFunc(cmd)
	// Under a root, as in Caddy: cobra treats root commands differently.
	root := &cobra.Command{Use: "caddy", SilenceUsage: true}
	root.AddCommand(cmd)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{c.Name}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

var testKeys struct {
	once              sync.Once
	merchant, gateway *rsa.PrivateKey
	err               error
}

// sharedKeys returns two key pairs shared by the tests: RSA generation is
// the slowest part of them under -race.
func sharedKeys(t *testing.T) (merchant, gateway *rsa.PrivateKey) {
	t.Helper()
	k := &testKeys
	k.once.Do(func() {
		if k.merchant, k.err = signature.GenerateKey(); k.err == nil {
			k.gateway, k.err = signature.GenerateKey()
		}
	})
	if k.err != nil {
		t.Fatal(k.err)
	}
	return k.merchant, k.gateway
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommandUnknownSubcommand(t *testing.T) {
	_, _, err := run(t, "", "sgin")
	if err == nil || !strings.Contains(err.Error(), `unknown sub-command "sgin"`) || !strings.Contains(err.Error(), "did you mean sign?") {
		t.Fatalf("err = %v, want an unknown sub-command error suggesting sign", err)
	}
	out, _, err := run(t, "")
	if err != nil || !strings.Contains(out, "keygen") {
		t.Fatalf("bare command: err %v, out %q; want help listing sub-commands", err, out)
	}
}
