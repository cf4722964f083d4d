package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/signature"
)

func keygenCommand() *cobra.Command {
	var out, name string
	c := &cobra.Command{
		Use:   "keygen [--out DIR] [--name NAME]",
		Short: "Generate an RSA-2048 key pair for signing requests or replies",
		Long: `
Generates an RSA-2048 key pair, the size AlipayHK requires.

With --out DIR it writes DIR/NAME-private.pem (PKCS#8 PEM, mode 0600) and
DIR/NAME-public.pem (SubjectPublicKeyInfo PEM), creating DIR if needed, and
refuses to overwrite an existing file. It then prints both keys in the forms
the Alipay SDKs take: the private key as base64 PKCS#8 DER (merchantPrivateKey)
and the public key as base64 SPKI DER (alipayPublicKey). The handler accepts
either form (public_key_file / public_key, sign_responses private_key_file).

Without --out everything, PEM included, goes to stdout and nothing is written.

The private key is printed on purpose: keep the output out of logs and shared
terminals. Generate one pair per side: the caller signs requests with its
private key (the gateway holds its public key), the gateway signs replies with
its own private key (the caller holds that public key).
`,
		Example: `  caddy alipay-order-sync keygen --out keys --name merchant
  caddy alipay-order-sync keygen --out keys --name gateway
  caddy alipay-order-sync keygen > throwaway-keys.txt`,
		Args:         noArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return keygen(cmd.OutOrStdout(), out, name)
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory to write NAME-private.pem and NAME-public.pem to (default: print to stdout)")
	c.Flags().StringVar(&name, "name", "merchant", "file name prefix, e.g. merchant or gateway")
	return c
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

func keygen(w io.Writer, dir, name string) error {
	// The name becomes part of a path: keep it to one plain file name.
	if !nameRE.MatchString(name) {
		return errors.New("--name: use 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
	}
	if dir != "" {
		// Check before the slow key generation, so a refusal is instant.
		for _, p := range keyPaths(dir, name) {
			if err := refuseExisting(p); err != nil {
				return err
			}
		}
	}
	key, err := signature.GenerateKey()
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	privPEM := signature.EncodePrivateKeyPEM(key)
	pubPEM := signature.EncodePublicKeyPEM(&key.PublicKey)
	if privPEM == nil || pubPEM == nil {
		return errors.New("keygen: the generated key could not be encoded")
	}

	if dir == "" {
		fmt.Fprintf(w, "%s private key (PKCS#8 PEM, keep it secret):\n%s\n", name, privPEM)
		fmt.Fprintf(w, "%s public key (SPKI PEM):\n%s\n", name, pubPEM)
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		paths := keyPaths(dir, name)
		if err := writeNew(paths[0], privPEM, 0o600); err != nil {
			return err
		}
		if err := writeNew(paths[1], pubPEM, 0o644); err != nil {
			// A lone private key without its public half is just clutter
			// that would block the next attempt.
			os.Remove(paths[0])
			return err
		}
		fmt.Fprintf(w, "wrote %s (private key, PKCS#8 PEM, mode 0600: keep it secret)\n", paths[0])
		fmt.Fprintf(w, "wrote %s (public key, SPKI PEM)\n\n", paths[1])
	}
	fmt.Fprintf(w, "%s private key, SDK form (base64 PKCS#8 DER, as the SDKs' merchantPrivateKey):\n%s\n\n",
		name, signature.EncodePrivateKeyBase64(key))
	fmt.Fprintf(w, "%s public key, SDK form (base64 SPKI DER, as the SDKs' alipayPublicKey or the Caddyfile's public_key):\n%s\n",
		name, signature.EncodePublicKeyBase64(&key.PublicKey))
	return nil
}

// keyPaths are the private and the public key file of a pair.
func keyPaths(dir, name string) [2]string {
	return [2]string{
		filepath.Join(dir, name+"-private.pem"),
		filepath.Join(dir, name+"-public.pem"),
	}
}

func refuseExisting(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("keygen: %s already exists; refusing to overwrite it (choose another --name or --out)", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

// writeNew creates path with O_EXCL, so a file that appeared since the
// first check is still never overwritten.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		return refuseExisting(path)
	}
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("--out: writing %s: %w", path, err)
	}
	return nil
}
