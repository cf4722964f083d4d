package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
)

// PathEgress is the egress path: a legacy system's plain order into
// alipay_order_push, which queues it durably, signs it and sends it
// through reverse_proxy to this project's ingress (first-time-signed's
// site), which verifies it, forwards it to the upstream and signs its
// reply; the egress verifies that reply, completes the entry durably and
// answers. It is compared with first-time-signed, the ingress alone, in
// the same round: the ratio is what putting the egress in front costs.
const PathEgress = "egress"

func init() {
	Paths = append(Paths, Path{
		Name: PathEgress,
		About: "a legacy system's unsigned order through `alipay_order_push`: enqueue (fsync), sign, send to the ingress of " +
			"first-time-signed, verify its signed reply, complete (fsync), answer; compared with first-time-signed",
		Baseline:      PathSigned,
		Site:          egressSite,
		Requests:      Requests{Pool: "egress", Unsigned: true, Body: func(f *Fixture, i int) []byte { return f.Order(f.ID("E", i), f.ID("E", i)) }},
		Check:         checkEgress,
		UpstreamCalls: 1,
	})
}

// egressSite is the egress site in front of the ingress site of
// first-time-signed, each with a bbolt file of its own (in production the
// egress and AlipayHK are different machines): the egress's client_id is
// the one the ingress knows, its key the merchant's, and the ingress's
// reply key is "AlipayHK's".
func egressSite(s *Site) (string, string, error) {
	ingress, ingressURL, err := gatewaySite(gatewayOpts{sign: true})(s)
	if err != nil {
		return "", "", err
	}
	ingressHost := strings.TrimPrefix(strings.TrimSuffix(ingressURL, SyncPath), "http://")
	port, err := s.Port()
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "http://127.0.0.1:%d {\n\troute /orders/sync {\n\t\talipay_order_push {\n", port)
	fmt.Fprintf(&b, "\t\t\tclient_id %s\n", ClientID)
	fmt.Fprintf(&b, "\t\t\tprivate_key_file %s\n", s.Key("merchant-private.pem"))
	fmt.Fprintf(&b, "\t\t\talipay_public_key_file %s\n", s.Key("gateway-public.pem"))
	fmt.Fprintf(&b, "\t\t\tstore bbolt %s\n", strconv.Quote(filepath.Join(s.DataDir, "egress.db")))
	b.WriteString("\t\t}\n")
	fmt.Fprintf(&b, "\t\treverse_proxy %s\n\t}\n}\n", ingressHost)
	return ingress + b.String(), fmt.Sprintf("http://127.0.0.1:%d/orders/sync", port), nil
}

// checkEgress accepts only AlipayHK's (the ingress's) final SUCCESS with
// an orderId, decided by AlipayHK within wait: a 202 (queued, not final in
// time) or a refusal by the gateway is an error of its kind.
func checkEgress(resp *http.Response, body []byte) (string, string) {
	if resp.StatusCode != http.StatusOK {
		return "http_" + strconv.Itoa(resp.StatusCode), string(truncate(body))
	}
	if by := resp.Header.Get("Order-Push-Decided-By"); by != "alipayhk" {
		return "decided_by_" + by, string(truncate(body))
	}
	var env struct {
		Result struct {
			ResultCode    string `json:"resultCode"`
			ResultMessage string `json:"resultMessage"`
		} `json:"result"`
		OrderID string `json:"orderId"`
	}
	switch {
	case json.Unmarshal(body, &env) != nil:
		return "not_envelope", string(truncate(body))
	case env.Result.ResultCode != "SUCCESS":
		return env.Result.ResultCode, env.Result.ResultMessage
	case env.OrderID == "":
		return "no_order_id", string(truncate(body))
	}
	return "", ""
}
