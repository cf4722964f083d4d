package caddytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEgressExample runs the README's egress walk-through exactly as
// written: examples/egress/Caddyfile as it is in the repository (only its
// ports moved to free ones), run from a copy of the files it uses, and the
// README's curl commands, whose answers must be the README's (new ids and
// times aside). Its state goes to .demo/ of the directory Caddy runs in;
// a restart keeps it, the README's reset clears it.
func TestEgressExample(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed; the README's commands use it")
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := egressSection(t, string(readme))
	blocks := egressBlocks(section)

	dir := t.TempDir()
	for _, f := range []string{
		"examples/egress/Caddyfile", "examples/seed-gift-card.json",
		"examples/demo-keys/merchant-private.pem", "examples/demo-keys/merchant-public.pem",
		"examples/demo-keys/gateway-private.pem", "examples/demo-keys/gateway-public.pem",
	} {
		b, err := os.ReadFile(filepath.Join(repoRoot(), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	example, err := os.ReadFile(filepath.Join(dir, "examples", "egress", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	// The README's command is `go run ./cmd/caddy run --config
	// examples/egress/Caddyfile` from the checkout's root.
	if !strings.Contains(section, "go run ./cmd/caddy run --config examples/egress/Caddyfile") {
		t.Fatal("the README's egress section no longer has its one command; update this test")
	}
	ingressPort, demoPort := freePort(t), freePort(t)
	var legacyPort int
	render := func(in *instance) string {
		legacyPort = in.port
		cfg := string(example)
		for _, r := range []struct{ old, new string }{
			{"admin localhost:2019", fmt.Sprintf("admin localhost:%d", in.adminPort)},
			{"127.0.0.1:8081", fmt.Sprintf("127.0.0.1:%d", in.port)},
			{"127.0.0.1:8443", fmt.Sprintf("127.0.0.1:%d", ingressPort)},
			{"127.0.0.1:9091", fmt.Sprintf("127.0.0.1:%d", demoPort)},
		} {
			if !strings.Contains(cfg, r.old) {
				t.Fatalf("examples/egress/Caddyfile no longer has %q; update this test and the README", r.old)
			}
			cfg = strings.ReplaceAll(cfg, r.old, r.new)
		}
		return cfg
	}
	dataDir := t.TempDir()
	start := func() *instance { return startCaddy(t, render, caddyOptions{dir: dir, dataDir: dataDir}) }

	// run runs a README command (a curl line, continued with \) from dir,
	// on the instance's legacy port.
	run := func(cmdText string) string {
		t.Helper()
		cmdText = strings.ReplaceAll(cmdText, "\\\n", " ")
		cmdText = strings.ReplaceAll(cmdText, "127.0.0.1:8081", fmt.Sprintf("127.0.0.1:%d", legacyPort))
		args := egressShellWords(t, cmdText)
		if len(args) == 0 || args[0] != "curl" {
			t.Fatalf("not a curl command: %q", cmdText)
		}
		cmd := exec.Command(curl, args[1:]...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmdText, err, out)
		}
		return strings.ReplaceAll(string(out), "\r\n", "\n")
	}

	in := start()
	var curls int
	var firstOrderID string
	for i := 0; i+1 < len(blocks); i++ {
		if blocks[i].lang != "sh" || !strings.HasPrefix(blocks[i].text, "curl ") || blocks[i+1].lang == "sh" {
			continue
		}
		curls++
		want := blocks[i+1].text
		got := run(blocks[i].text)
		// The README looks the queued entry up "a moment later": a
		// lookup is tried again until delivery has had that moment.
		for deadline := time.Now().Add(15 * time.Second); !strings.Contains(blocks[i].text, "--data") &&
			egressNormalize(got) != egressNormalize(want) && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			got = run(blocks[i].text)
		}
		if egressNormalize(got) != egressNormalize(want) {
			t.Errorf("README command:\n%s\nanswered:\n%s\nthe README says:\n%s", blocks[i].text, got, want)
		}
		if curls == 1 {
			firstOrderID = egressOrderID.FindString(got)
		}
	}
	if curls != 3 {
		t.Errorf("found %d curl commands with their answers in the README's egress section, want 3", curls)
	}
	if _, err := os.Stat(filepath.Join(dir, ".demo", "egress.db")); err != nil {
		t.Errorf("the example's state is not in .demo/ of Caddy's working directory: %v", err)
	}

	// The derived requestId the README computes with sha256sum.
	if !strings.Contains(section, "`5ee0a4b20ab3f7077ef8503c3fc48a1f`") {
		t.Error("the README's derived requestId example changed; check its printf line")
	}

	// A restart keeps the state: the seed again is the same entry.
	in.stop()
	in = start()
	seed := blocks[egressFirstCurl(blocks)].text
	if id := egressOrderID.FindString(run(seed)); id != firstOrderID || id == "" {
		t.Errorf("after a restart the seed got orderId %q, want the first run's %q", id, firstOrderID)
	}
	// The README's reset: a new order id.
	in.stop()
	if err := os.RemoveAll(filepath.Join(dir, ".demo")); err != nil {
		t.Fatal(err)
	}
	in = start()
	if id := egressOrderID.FindString(run(seed)); id == firstOrderID || id == "" {
		t.Errorf("after the reset the seed got orderId %q, want a new one (first run: %q)", id, firstOrderID)
	}
}

var egressOrderID = regexp.MustCompile(`"orderId":"demo-[0-9a-f-]+"`)

// egressSection is the README's egress section.
func egressSection(t *testing.T, readme string) string {
	t.Helper()
	i := strings.Index(readme, "\n## Egress: sending your order syncs to AlipayHK\n")
	if i < 0 {
		t.Fatal("the README has no section \"Egress: sending your order syncs to AlipayHK\"")
	}
	rest := readme[i+1:]
	if j := strings.Index(rest[3:], "\n## "); j >= 0 {
		rest = rest[:j+3]
	}
	return rest
}

type egressBlock struct{ lang, text string }

var egressFence = regexp.MustCompile("(?s)```([a-z]*)\n(.*?)```")

func egressBlocks(section string) []egressBlock {
	var out []egressBlock
	for _, m := range egressFence.FindAllStringSubmatch(section, -1) {
		out = append(out, egressBlock{lang: m[1], text: strings.TrimRight(m[2], "\n")})
	}
	return out
}

func egressFirstCurl(blocks []egressBlock) int {
	for i, b := range blocks {
		if b.lang == "sh" && strings.HasPrefix(b.text, "curl ") {
			return i
		}
	}
	return -1
}

// egressNormalize blanks what differs between runs: ids the demo backend
// and the gateway make, times and the Date header.
func egressNormalize(s string) string {
	for _, r := range []struct {
		re  *regexp.Regexp
		new string
	}{
		{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "UUID"},
		{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`), "TIME"},
		{regexp.MustCompile(`(?m)^Date: .*$`), "Date: DATE"},
	} {
		s = r.re.ReplaceAllString(s, r.new)
	}
	return strings.TrimSpace(s)
}

// egressShellWords splits a command line as sh does for the README's
// commands: words separated by blanks, single-quoted strings taken as is.
func egressShellWords(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '"' || r == '\\' || r == '$' || r == '`':
			t.Fatalf("the README's command uses %q, which this test does not interpret: %s", r, s)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %s", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
