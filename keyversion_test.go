package ordersync

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-alipay/ordersync/signature"
)

// TestKeyVersionOneRule: every door a keyVersion comes in by — the
// Caddyfile (client keys and sign_responses), the JSON config at provision
// and the Signature header — accepts exactly what signature.CheckKeyVersion
// accepts. A configured version the header cannot carry would be a key no
// caller can select; a version the header carries but the config refuses
// would be a rotation scheme callers can use and operators cannot.
func TestKeyVersionOneRule(t *testing.T) {
	key, err := signature.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := signature.EncodePublicKeyBase64(&key.PublicKey)
	priv := signature.EncodePrivateKeyBase64(key)
	pubFile := filepath.Join(t.TempDir(), "public.pem")
	if err := os.WriteFile(pubFile, signature.EncodePublicKeyPEM(&key.PublicKey), 0o600); err != nil {
		t.Fatal(err)
	}
	sig := signature.FormatHeader("1", []byte{1, 2, 3})
	sigValue := sig[strings.LastIndex(sig, "signature="):]

	for _, v := range []string{
		"1", "0", "007", "4294967295", "4294967296", "v2", "2024-05", "1.2",
		strings.Repeat("0", 32) + "1", "1;2", "-1", "+1",
	} {
		want := signature.CheckKeyVersion(v) == nil
		doors := map[string]error{}

		var h Handler
		doors["Caddyfile client key"] = h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(fmt.Sprintf(
			"alipay_order_sync {\n client C {\n  public_key %s %s\n }\n}", v, pub)))
		doors["Caddyfile sign_responses"] = h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(fmt.Sprintf(
			"alipay_order_sync {\n sign_responses {\n  private_key %s\n  key_version %s\n }\n}", priv, v)))

		j := Handler{
			Clients:       []ClientConfig{{ID: "C", PublicKeys: map[string]string{v: pub}}},
			SignResponses: &SignConfig{PrivateKey: priv, KeyVersion: v},
		}
		repl := caddy.NewReplacer()
		doors["JSON client key"] = j.provisionClients(repl)
		doors["JSON sign_responses"] = j.provisionSigner(repl)
		j.Clients[0] = ClientConfig{ID: "C", PublicKeyFiles: map[string]string{v: pubFile}}
		doors["JSON client key file"] = j.provisionClients(repl)

		_, doors["Signature header"] = signature.ParseHeader("algorithm=RSA256,keyVersion=" + v + "," + sigValue)

		for door, err := range doors {
			if (err == nil) != want {
				t.Errorf("keyVersion %q: %s says %v, CheckKeyVersion says valid=%v", v, door, err, want)
			}
		}
		if want {
			continue
		}
		// A refusal names the option it is about, as every config error does.
		for door, option := range map[string]string{
			"Caddyfile client key": "public_key", "Caddyfile sign_responses": "key_version",
			"JSON client key": "public_key", "JSON client key file": "public_key_file",
			"JSON sign_responses": "key_version",
		} {
			if msg := fmt.Sprint(doors[door]); !strings.Contains(msg, option) || !strings.Contains(msg, "keyVersion must be") {
				t.Errorf("keyVersion %q: the %s error %q does not name %s and the rule", v, door, msg, option)
			}
		}
	}
}
