package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
)

// A Path is one way a request goes through Caddy. Each round measures every
// path next to its baseline (bare reverse_proxy unless it says otherwise),
// each window in a Caddy process of its own, started with only that path's
// sites and an empty store.
//
// Adding a path — egress → ingress, for instance — is adding a value to
// Paths: its sites (Site), what it sends (Requests), how a correct answer
// looks (Check), how many upstream calls one answer makes (UpstreamCalls)
// and, where the comparison is not with bare reverse_proxy, its Baseline
// (egress compares with the ingress path it goes through).
type Path struct {
	// Name is how the path is selected (-paths) and reported.
	Name string
	// About is one line on what a request of this path does.
	About string
	// Baseline names the path this one is compared with in the same round;
	// "" is bare reverse_proxy.
	Baseline string
	// Site returns the Caddyfile site blocks the path needs and the URL the
	// load generator sends to.
	Site func(s *Site) (sites, url string, err error)
	// Setup, if set, runs after Caddy started and before the warm-up: the
	// orders a replay or a re-send refers to are committed here.
	Setup func(ctx context.Context, w *Window) error
	// Requests is what the load generator sends.
	Requests Requests
	// Check judges one answer.
	Check Check
	// UpstreamCalls is how often the upstream is called per correct answer;
	// a window that differs did not measure what it says, and the report
	// says so.
	UpstreamCalls int
	// SigningBound compares the path's rate with the signing bound: RSA
	// signatures per second on Caddy's CPUs, measured in the same round.
	SigningBound bool
	// NeedsRedis skips the path, with a note, when no redis-server can be
	// started.
	NeedsRedis bool
}

// Requests says what a path sends. Requests are made and, unless Unsigned,
// signed before any window opens (the load generator must not spend its CPU
// on RSA while measuring) and kept for the whole run: every window runs on
// an empty store, so a request that is new to one window is new to all,
// and paths that name the same Pool share it.
type Requests struct {
	// Pool names the requests; paths with the same Pool share them.
	Pool string
	// Body returns the i-th body of the pool.
	Body func(f *Fixture, i int) []byte
	// Repeat > 0 makes the pool exactly Repeat requests, sent round-robin
	// (bare, replay). 0 means each is sent once per window and the pool
	// grows to what a window needs.
	Repeat int
	// Unsigned sends the body without the Alipay signature headers, for a
	// path whose entry point is not the ingress handler.
	Unsigned bool
}

// Check judges one answer: kind is "" when it is what the path must get,
// else a short label to count it under (a resultCode, http_502, …);
// detail explains it.
type Check func(resp *http.Response, body []byte) (kind, detail string)

// Site is what a path's sites are written with.
type Site struct {
	// Upstream is host:port of the upstream every path forwards to.
	Upstream string
	// Root is the checkout; examples/ holds the demo keys and the seed.
	Root string
	// DataDir is an empty directory for this window's files (bbolt).
	DataDir string
	// Redis is host:port of an emptied redis-server; "" when there is none.
	Redis string

	// held keeps the ports handed out bound until Caddy starts, so no
	// two of them collide.
	held []net.Listener
}

// Port returns a free loopback port for a site, held until Caddy starts.
func (s *Site) Port() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	s.held = append(s.held, l)
	return l.Addr().(*net.TCPAddr).Port, nil
}

// release frees the held ports for Caddy and returns them in the order
// they were handed out.
func (s *Site) release() []int {
	ports := make([]int, len(s.held))
	for i, l := range s.held {
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	s.held = nil
	return ports
}

// Key returns the path of a file in examples/demo-keys, quoted for a
// Caddyfile.
func (s *Site) Key(name string) string {
	return strconv.Quote(filepath.Join(s.Root, "examples", "demo-keys", name))
}

// Names of the built-in paths.
const (
	PathBare     = "bare"
	PathUnsigned = "first-time-unsigned"
	PathSigned   = "first-time-signed"
	PathResend   = "resend"
	PathReplay   = "replay"
	PathRedis    = "first-time-redis"
)

// Bare is the baseline: bare reverse_proxy to the same upstream, sent the
// seed body with the same signed headers the gateway gets.
var Bare = Path{
	Name:          PathBare,
	About:         "bare `reverse_proxy` to the same upstream",
	Site:          bareSite,
	Requests:      Requests{Pool: "seed", Repeat: 1, Body: func(f *Fixture, _ int) []byte { return f.SeedBytes }},
	Check:         checkBare,
	UpstreamCalls: 1,
}

// Paths are the measured paths, in the order of a round.
var Paths = []Path{
	{
		Name:          PathUnsigned,
		About:         "new order: verify, decode, validate, claim, forward, commit (fsync), unsigned reply",
		Site:          gatewaySite(gatewayOpts{}),
		Requests:      freshOrders,
		Check:         checkGateway(false),
		UpstreamCalls: 1,
	},
	{
		Name:          PathSigned,
		About:         "the same with `sign_responses`: the reply is RSA-signed",
		Site:          gatewaySite(gatewayOpts{sign: true}),
		Requests:      freshOrders,
		Check:         checkGateway(true),
		UpstreamCalls: 1,
		SigningBound:  true,
	},
	{
		Name:     PathResend,
		About:    "new requestId for an order already in that status: stored SUCCESS, signed afresh, replay record written (fsync)",
		Site:     gatewaySite(gatewayOpts{sign: true}),
		Setup:    commitOrders,
		Requests: resends,
		Check:    checkGateway(true),
	},
	{
		Name:     PathReplay,
		About:    "the exact bytes of an answered request again: verify, then the stored reply",
		Site:     gatewaySite(gatewayOpts{sign: true}),
		Setup:    commitOrders,
		Requests: committed,
		Check:    checkGateway(true),
	},
	{
		Name:          PathRedis,
		About:         "first-time-unsigned with `store redis` (a private redis-server on Caddy's CPUs)",
		Site:          gatewaySite(gatewayOpts{redis: true}),
		Requests:      freshOrders,
		Check:         checkGateway(false),
		UpstreamCalls: 1,
		NeedsRedis:    true,
	},
}

// committedOrders is how many orders replay and resend spread over: more
// than the connections, so requests seldom queue on one order's lock and
// the numbers describe the gateway rather than one hot key.
const committedOrders = 64

var (
	freshOrders = Requests{Pool: "fresh", Body: func(f *Fixture, i int) []byte {
		return f.Order(f.ID("F", i), f.ID("F", i))
	}}
	committed = Requests{Pool: "committed", Repeat: committedOrders, Body: func(f *Fixture, i int) []byte {
		return f.Order(f.ID("C", i), f.ID("C", i))
	}}
	resends = Requests{Pool: "resend", Body: func(f *Fixture, i int) []byte {
		return f.Order(f.ID("R", i), f.ID("C", i%committedOrders))
	}}
)

// commitOrders makes the committed orders exist in the window's store, so
// that resend finds them in their current status and replay finds their
// stored answers.
func commitOrders(ctx context.Context, w *Window) error {
	return w.SendAll(ctx, committed, checkGateway(true))
}

func bareSite(s *Site) (string, string, error) {
	port, err := s.Port()
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("http://127.0.0.1:%d {\n\treverse_proxy %s\n}\n", port, s.Upstream),
		fmt.Sprintf("http://127.0.0.1:%d%s", port, SyncPath), nil
}

type gatewayOpts struct {
	sign  bool
	redis bool
}

// gatewaySite is the gateway configured like production, in front of the
// same upstream. request_time_window is widened to a day so that requests
// signed once, before the first window, stay valid for the whole run; the
// check itself still runs on every request, so it costs the same.
func gatewaySite(o gatewayOpts) func(s *Site) (string, string, error) {
	return func(s *Site) (string, string, error) {
		port, err := s.Port()
		if err != nil {
			return "", "", err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "http://127.0.0.1:%d {\n\troute %s {\n\t\talipay_order_sync {\n", port, SyncPath)
		fmt.Fprintf(&b, "\t\t\tclient %s {\n\t\t\t\tpublic_key_file 1 %s\n\t\t\t}\n", ClientID, s.Key("merchant-public.pem"))
		if o.sign {
			fmt.Fprintf(&b, "\t\t\tsign_responses {\n\t\t\t\tprivate_key_file %s\n\t\t\t}\n", s.Key("gateway-private.pem"))
		}
		if o.redis {
			if s.Redis == "" {
				return "", "", fmt.Errorf("no redis-server")
			}
			fmt.Fprintf(&b, "\t\t\tstore redis %s\n", s.Redis)
		} else {
			fmt.Fprintf(&b, "\t\t\tstore bbolt %s\n", strconv.Quote(filepath.Join(s.DataDir, "orders.db")))
		}
		b.WriteString("\t\t\trequest_time_window 24h\n\t\t}\n")
		fmt.Fprintf(&b, "\t\treverse_proxy %s\n\t}\n}\n", s.Upstream)
		return b.String(), fmt.Sprintf("http://127.0.0.1:%d%s", port, SyncPath), nil
	}
}

// checkBare accepts what the upstream answers: 200 with an orderId.
func checkBare(resp *http.Response, body []byte) (string, string) {
	if resp.StatusCode != http.StatusOK {
		return "http_" + strconv.Itoa(resp.StatusCode), string(truncate(body))
	}
	var b struct {
		OrderID string `json:"orderId"`
	}
	if json.Unmarshal(body, &b) != nil || b.OrderID == "" {
		return "no_order_id", string(truncate(body))
	}
	return "", ""
}

// checkGateway accepts only a SUCCESS envelope with an orderId, signed or
// not as the site is configured: the gateway answers HTTP 200 for refusals
// too, so the status code alone would count refusals as throughput.
func checkGateway(signed bool) Check {
	return func(resp *http.Response, body []byte) (string, string) {
		if resp.StatusCode != http.StatusOK {
			return "http_" + strconv.Itoa(resp.StatusCode), string(truncate(body))
		}
		var env struct {
			Result struct {
				ResultCode    string `json:"resultCode"`
				ResultMessage string `json:"resultMessage"`
			} `json:"result"`
			OrderID string `json:"orderId"`
		}
		hasSig := resp.Header.Get("Signature") != ""
		switch {
		case json.Unmarshal(body, &env) != nil:
			return "not_envelope", string(truncate(body))
		case env.Result.ResultCode != "SUCCESS":
			return env.Result.ResultCode, env.Result.ResultMessage
		case env.OrderID == "":
			return "no_order_id", string(truncate(body))
		case signed && !hasSig:
			return "unsigned", "SUCCESS without a Signature header"
		case !signed && hasSig:
			return "signed", "a Signature header where sign_responses is off"
		}
		return "", ""
	}
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// pathByName finds a path among Bare and Paths.
func pathByName(name string) (*Path, bool) {
	if name == PathBare {
		return &Bare, true
	}
	for i := range Paths {
		if Paths[i].Name == name {
			return &Paths[i], true
		}
	}
	return nil, false
}

// PathNames lists the measured paths (not bare), in order.
func PathNames() []string {
	out := make([]string, len(Paths))
	for i, p := range Paths {
		out[i] = p.Name
	}
	return out
}
