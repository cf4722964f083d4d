package orderflow

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-alipay/ordersync/internal/redistest"
	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/redisstore"
)

// TestFirstTimeOnRedisInTwoRoundTrips: on a store that claims, locks and
// reads in one step (Redis), a first-time sync sends the server two
// commands, the claim with its lock and read, and the commit with its
// unlock; a replay one, the claim (Redis has no lookup before it).
func TestFirstTimeOnRedisInTwoRoundTrips(t *testing.T) {
	var sent atomic.Int64
	b, err := redisstore.Open(redisstore.Options{Addr: countingProxy(t, redistest.Start(t), &sent)})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(b, store.Options{})
	t.Cleanup(func() {
		st.Wait()
		_ = b.Close()
	})
	h := newHarness(t, func(c *Config) { c.Store = st })
	count := func(body []byte) (Answer, int64) {
		t.Helper()
		before := sent.Load()
		a := h.send(body)
		st.Wait()
		return a, sent.Load() - before
	}

	expect(t, h.send(newOrder("TICKETED").body()), Success, "success") // loads the scripts
	st.Wait()
	o := newOrder("TICKETED")
	a, n := count(o.body())
	expect(t, a, Success, "success")
	if n != 2 {
		t.Errorf("first-time sync: %d commands (store operations %v), want 2", n, opNames(a))
	}
	a, n = count(o.body())
	if !a.Replay || n != 1 {
		t.Errorf("replay: replay=%v, %d commands, want 1", a.Replay, n)
	}
}

// countingProxy forwards connections to addr and counts the commands
// clients send through it (RESP arrays of bulk strings, as clients send
// every command). It returns its own address.
func countingProxy(t *testing.T, addr string, commands *atomic.Int64) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
			go func() { _, _ = io.Copy(c, s) }()
			go func() {
				r := bufio.NewReader(c)
				for {
					n, err := respLine(r, '*')
					if err != nil {
						return
					}
					var cmd strings.Builder
					cmd.WriteString("*" + strconv.Itoa(n) + "\r\n")
					for range n {
						size, err := respLine(r, '$')
						if err != nil {
							return
						}
						buf := make([]byte, size+2)
						if _, err := io.ReadFull(r, buf); err != nil {
							return
						}
						cmd.WriteString("$" + strconv.Itoa(size) + "\r\n")
						cmd.Write(buf)
					}
					commands.Add(1)
					if _, err := io.WriteString(s, cmd.String()); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// respLine reads a RESP line "<kind><n>\r\n" and returns n.
func respLine(r *bufio.Reader, kind byte) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if len(line) < 2 || line[0] != kind {
		return 0, io.ErrUnexpectedEOF
	}
	return strconv.Atoi(line[1:])
}
