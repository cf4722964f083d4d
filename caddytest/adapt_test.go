package caddytest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

// TestExampleAdaptsToCheckedInJSON keeps examples/caddy.json, the JSON twin
// of Caddyfile.example, exactly what `caddy adapt` produces.
func TestExampleAdaptsToCheckedInJSON(t *testing.T) {
	cmd := exec.Command(caddyBin, "adapt", "--config", "Caddyfile.example")
	cmd.Dir = repoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v", err)
	}
	golden, err := os.ReadFile(filepath.Join(repoRoot(), "examples", "caddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("caddy adapt of Caddyfile.example differs from examples/caddy.json; regenerate with:\n  go run ./cmd/caddy adapt --config Caddyfile.example --pretty > examples/caddy.json\ngot: %s", out)
	}
}

// TestExampleValidates: `caddy validate` accepts the example in both forms.
func TestExampleValidates(t *testing.T) {
	for _, args := range [][]string{
		{"validate", "--config", "Caddyfile.example"},
		{"validate", "--config", "examples/caddy.json"},
	} {
		cmd := exec.Command(caddyBin, args...)
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("caddy %v: %v\n%s", args, err, out)
		}
	}
}
