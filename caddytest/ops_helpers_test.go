package caddytest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The helpers of ops_test.go carry an "ops" prefix: other test files of this
// package are written in parallel, and the prefix keeps names from colliding.

// opsSample is one line of the Prometheus text exposition.
type opsSample struct {
	name   string
	labels map[string]string
	value  float64
}

// opsScrape is one GET of the admin /metrics endpoint.
type opsScrape struct {
	text    string
	samples []opsSample
}

// opsScrapeMetrics reads and parses the admin endpoint's /metrics. A parser
// of our own keeps the test off prometheus/common, which go.mod only has as
// an indirect requirement.
func opsScrapeMetrics(t testing.TB, in *instance) opsScrape {
	t.Helper()
	resp, err := adminClient.Get(in.adminURL("/metrics"))
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		// promhttp answers 500 when gathering fails, e.g. when one
		// collector was registered twice under different descriptors.
		t.Fatalf("GET /metrics: HTTP %d: %s", resp.StatusCode, body)
	}
	samples, err := opsParseExposition(string(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return opsScrape{text: string(body), samples: samples}
}

func opsParseExposition(text string) ([]opsSample, error) {
	var out []opsSample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := opsSample{labels: map[string]string{}}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			return nil, fmt.Errorf("line %d: no value: %q", n, line)
		}
		s.name = line[:end]
		rest := line[end:]
		if rest[0] == '{' {
			var err error
			if s.labels, rest, err = opsParseLabels(rest[1:]); err != nil {
				return nil, fmt.Errorf("line %d: %v: %q", n, err, line)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: no value: %q", n, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %v", n, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// opsParseLabels reads `k="v",k2="v2"}` and returns what follows the brace.
func opsParseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return nil, "", fmt.Errorf("malformed label set")
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var val strings.Builder
		closed := false
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			if c == '"' {
				s = s[i+1:]
				closed = true
				break
			}
			val.WriteByte(c)
		}
		if !closed {
			return nil, "", fmt.Errorf("unterminated label value")
		}
		labels[key] = val.String()
	}
}

// sum adds up the samples named name whose labels include match, and says
// how many series matched.
func (s opsScrape) sum(name string, match map[string]string) (float64, int) {
	total, n := 0.0, 0
	for _, smp := range s.samples {
		if smp.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if smp.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += smp.value
			n++
		}
	}
	return total, n
}

// labelValues lists the values one label takes across a metric's series.
func (s opsScrape) labelValues(prefix, label string) []string {
	seen := map[string]bool{}
	for _, smp := range s.samples {
		if strings.HasPrefix(smp.name, prefix) {
			if v, ok := smp.labels[label]; ok {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// opsLogEntries parses Caddy's captured stderr: JSON lines only (the race
// detector and panics write plain text, which callers check for apart).
func opsLogEntries(in *instance) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(in.logs.String(), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// opsSyncLines are the handler's per-request lines.
func opsSyncLines(in *instance) []map[string]any {
	var out []map[string]any
	for _, e := range opsLogEntries(in) {
		if e["msg"] == "order sync" {
			out = append(out, e)
		}
	}
	return out
}

// opsWaitForLog waits until a log line satisfies pred. The handler logs
// after it wrote the reply, so a client can hold the answer a moment before
// the line reaches stderr.
func opsWaitForLog(t testing.TB, in *instance, what string, pred func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, e := range opsLogEntries(in) {
			if pred(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line for %s; log:\n%s", what, in.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// opsTryLoad posts a config to /load and returns the HTTP status and body,
// so that a test can look at the error a refused config gets.
func opsTryLoad(t testing.TB, in *instance, contentType string, cfg []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, in.adminURL("/load"), strings.NewReader(string(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("POST /load: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// opsAdminGet fetches an admin path and decodes a JSON answer into v when
// the status is 200.
func opsAdminGet(t testing.TB, in *instance, path string, v any) (int, string) {
	t.Helper()
	resp, err := adminClient.Get(in.adminURL(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: not JSON: %v: %s", path, err, body)
		}
	}
	return resp.StatusCode, string(body)
}

// opsRunCaddy runs the built binary from the repository root (the way the
// README's commands are written) with extra environment, and returns its
// stdout and stderr apart.
func opsRunCaddy(t testing.TB, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// opsFindHandler returns the first object in an adapted config whose
// "handler" is name; maps are shared, so editing it edits the document.
func opsFindHandler(v any, name string) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == name {
			return x
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if h := opsFindHandler(x[k], name); h != nil {
				return h
			}
		}
	case []any:
		for _, e := range x {
			if h := opsFindHandler(e, name); h != nil {
				return h
			}
		}
	}
	return nil
}
