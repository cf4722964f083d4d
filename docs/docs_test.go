// Package docs_test checks that the repository's documentation stands on
// its own and stays true: every relative Markdown link and every
// docs/SPEC.md section cited in the code lead to something inside the
// repository, and the README asks for go.mod's Go version.
package docs_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// root is the repository root, one level up from this package.
var root = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Dir(wd)
}()

// walk calls fn for every file of the repository with one of exts, skipping
// hidden folders (.git, .demo) and what tools write (bench/results).
func walk(t *testing.T, exts []string, fn func(rel string, data []byte)) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == filepath.Join("bench", "results")) {
				return filepath.SkipDir
			}
			return nil
		}
		for _, ext := range exts {
			if strings.HasSuffix(path, ext) {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				fn(filepath.ToSlash(rel), data)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mdLink matches an inline Markdown link or image target: ](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestMarkdownLinksStayInside: a relative link names a file or folder that
// exists in the repository, never one beside it, and a #fragment names a
// heading of the Markdown file it points at (a table of contents that
// survives a renamed section is a broken one).
func TestMarkdownLinksStayInside(t *testing.T) {
	n := 0
	walk(t, []string{".md"}, func(rel string, data []byte) {
		for _, m := range mdLink.FindAllSubmatch(data, -1) {
			target := string(m[1])
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			n++
			file, fragment, _ := strings.Cut(target, "#")
			abs := filepath.Join(root, filepath.FromSlash(rel)) // #fragment alone: this file
			if file != "" {
				abs = filepath.Join(root, filepath.Dir(rel), filepath.FromSlash(file))
			}
			if inside, err := filepath.Rel(root, abs); err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
				t.Errorf("%s: link %q points outside the repository", rel, m[1])
				continue
			}
			linked, err := os.ReadFile(abs)
			if err != nil {
				if _, err := os.Stat(abs); err != nil {
					t.Errorf("%s: link %q: no such file in the repository", rel, m[1])
				}
				continue // a folder
			}
			if fragment != "" && strings.HasSuffix(abs, ".md") && !anchors(linked)[fragment] {
				t.Errorf("%s: link %q: no heading with that anchor", rel, m[1])
			}
		}
	})
	if n == 0 {
		t.Fatal("found no relative links at all; is the walk looking at the repository?")
	}
}

// anchors returns the anchors GitHub gives the headings of a Markdown
// document: lower case, punctuation dropped, spaces as hyphens, and -1, -2…
// after repeats. Headings inside fenced code blocks are not headings.
func anchors(md []byte) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if k := seen[a]; k > 0 {
			out[fmt.Sprintf("%s-%d", a, k)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// specCite matches a citation of a section of the project's spec summary.
var specCite = regexp.MustCompile(`docs/SPEC\.md §(\d+)`)

// anyCite matches a section sign followed by a number, whatever it cites.
var anyCite = regexp.MustCompile(`§\d`)

// TestSpecCitationsExist: every "docs/SPEC.md §N" in the code and the docs
// names a section docs/SPEC.md has ("## N. …"), and no section sign cites
// anything else: a document the repository does not hold cannot be read.
func TestSpecCitationsExist(t *testing.T) {
	spec, err := os.ReadFile(filepath.Join(root, "docs", "SPEC.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(spec))
	heading := regexp.MustCompile(`^## (\d+)\. `)
	for sc.Scan() {
		if m := heading.FindStringSubmatch(sc.Text()); m != nil {
			sections[m[1]] = true
		}
	}
	n := 0
	walk(t, []string{".go", ".md", ".json"}, func(rel string, data []byte) {
		if rel != "docs/SPEC.md" {
			if all, ours := len(anyCite.FindAll(data, -1)), len(specCite.FindAll(data, -1)); all != ours {
				t.Errorf("%s cites a section (§) of something other than docs/SPEC.md %d times", rel, all-ours)
			}
		}
		for _, m := range specCite.FindAllSubmatch(data, -1) {
			n++
			if !sections[string(m[1])] {
				t.Errorf("%s cites docs/SPEC.md §%s, which has no such section", rel, m[1])
			}
		}
	})
	if n == 0 {
		t.Fatal("found no citation of docs/SPEC.md; is the walk looking at the repository?")
	}
}

// TestReadmeGoVersion: the Go version the README asks for is go.mod's.
func TestReadmeGoVersion(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Go " + string(m[1]) + " or newer"; !bytes.Contains(readme, []byte(want)) {
		t.Errorf("README.md does not say %q (go.mod's go line)", want)
	}
}

// TestCIBuildsWithXcaddyAsTheReadmeSays: the xcaddy commands of the
// README's checkout form are the ones .ci/run runs, so the form users copy
// is the one CI proves.
func TestCIBuildsWithXcaddyAsTheReadmeSays(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "go install github.com/caddyserver/xcaddy/") ||
			strings.HasPrefix(line, "xcaddy build --with github.com/caddy-alipay/ordersync@v0.0.0=") ||
			strings.HasPrefix(line, "./caddy list-modules") {
			n++
			if !bytes.Contains(ci, []byte(line)) {
				t.Errorf(".ci/run does not run the README's %q", line)
			}
		}
	}
	if n != 3 {
		t.Errorf("found %d of the README's 3 xcaddy commands (install, build, list-modules)", n)
	}
}
