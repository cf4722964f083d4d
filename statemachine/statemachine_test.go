package statemachine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The built-in scenarios and their decision tables are tested with their
// definitions, in package scenario; the machines here are written for the
// rules under test.

// pickupQueue is a custom scenario written in the README's scenario syntax:
//
//	scenario pickup_queue {
//	    statuses CALL_NUM TO_PICK_UP CANCELLED FINISHED
//	    end CANCELLED FINISHED
//	    repeatable CALL_NUM
//	    only_from CANCELLED CALL_NUM
//	    next_must_be TO_PICK_UP FINISHED
//	}
func pickupQueue() Scenario {
	return Scenario{
		Name:       "pickup_queue",
		Statuses:   []string{"CALL_NUM", "TO_PICK_UP", "CANCELLED", "FINISHED"},
		End:        []string{"CANCELLED", "FINISHED"},
		Repeatable: []string{"CALL_NUM"},
		OnlyFrom:   map[string][]string{"CANCELLED": {"CALL_NUM"}},
		NextMustBe: map[string]string{"TO_PICK_UP": "FINISHED"},
	}
}

func st(status string, ms int64) *State { return &State{Status: status, ModifyTime: ms} }

type decideCase struct {
	current *State
	next    string
	at      int64
	want    Verdict
	reason  string // substring of Decision.Reason; "" means Reason must be empty
}

func checkDecision(t *testing.T, m *Machine, c decideCase) {
	t.Helper()
	cur := "nil"
	if c.current != nil {
		cur = fmt.Sprintf("%s@%d", c.current.Status, c.current.ModifyTime)
	}
	got := m.Decide(c.current, c.next, c.at)
	if got.Verdict != c.want {
		t.Errorf("%s: %s -> %q@%d: verdict %v (%q), want %v", m.Name(), cur, c.next, c.at, got.Verdict, got.Reason, c.want)
		return
	}
	if c.reason == "" && got.Reason != "" {
		t.Errorf("%s: %s -> %q@%d: unexpected reason %q", m.Name(), cur, c.next, c.at, got.Reason)
	}
	if !strings.Contains(got.Reason, c.reason) {
		t.Errorf("%s: %s -> %q@%d: reason %q, want it to contain %q", m.Name(), cur, c.next, c.at, got.Reason, c.reason)
	}
	if got.Verdict == Reject && got.Reason == "" {
		t.Errorf("%s: %s -> %q@%d: Reject without a reason", m.Name(), cur, c.next, c.at)
	}
}

func TestDecideCustomContractExample(t *testing.T) {
	m, err := New(pickupQueue())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []decideCase{
		{nil, "TICKETED", 0, Reject, "orderStatus: not a status of scenario pickup_queue"},
		{nil, "CANCELLED", 10, Forward, ""},
		{st("CALL_NUM", 10), "CALL_NUM", 9, Reject, "orderModifyTime: older"},
		{st("CALL_NUM", 10), "CALL_NUM", 10, Forward, ""},
		{st("TO_PICK_UP", 10), "TO_PICK_UP", 10, AlreadyCurrent, ""},
		{st("CANCELLED", 10), "CANCELLED", 10, AlreadyCurrent, ""},
		{st("CANCELLED", 10), "FINISHED", 20, Reject, "orderStatus: CANCELLED is an end status; nothing may follow it"},
		{st("TO_PICK_UP", 10), "CANCELLED", 20, Reject, "orderStatus: after TO_PICK_UP only FINISHED is allowed"}, // 6 before 7
		{st("TO_PICK_UP", 10), "CALL_NUM", 20, Reject, "orderStatus: after TO_PICK_UP only FINISHED is allowed"},  // 6 before 8
		{st("TO_PICK_UP", 10), "FINISHED", 20, Forward, ""},
		{st("CALL_NUM", 10), "CANCELLED", 20, Forward, ""},
		{st("CALL_NUM", 10), "TO_PICK_UP", 20, Forward, ""},
		{st("CALL_NUM", 10), "FINISHED", 20, Forward, ""},
	} {
		checkDecision(t, m, c)
	}
}

func TestDecideOnlyFromSeveral(t *testing.T) {
	m, err := New(Scenario{
		Name:     "several",
		Statuses: []string{"A", "B", "C", "D"},
		OnlyFrom: map[string][]string{"D": {"C", "A"}, "C": {"A", "B"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkDecision(t, m, decideCase{st("B", 0), "D", 0, Reject, "orderStatus: D may only follow A or C"})
	checkDecision(t, m, decideCase{st("A", 0), "D", 0, Forward, ""})
	checkDecision(t, m, decideCase{st("B", 0), "C", 0, Forward, ""})

	m, err = New(Scenario{Name: "three", Statuses: []string{"A", "B", "C", "D"}, OnlyFrom: map[string][]string{"D": {"C", "B", "A"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.onlyFromReason[3]; got != "orderStatus: D may only follow A, B or C" {
		t.Errorf("reason %q", got)
	}
}

func TestNewValidation(t *testing.T) {
	for _, c := range []struct {
		s    Scenario
		want string // the whole error
	}{
		{Scenario{Statuses: []string{"A"}}, `scenario: name is empty`},
		{Scenario{Name: "x"}, `scenario x: statuses: at least one status is required`},
		{Scenario{Name: "x", Statuses: []string{"A", ""}}, `scenario x: statuses: a status is empty`},
		{Scenario{Name: "x", Statuses: []string{"A", "B", "A"}}, `scenario x: statuses: "A" is listed twice`},
	} {
		m, err := New(c.s)
		if err == nil {
			t.Errorf("New(%+v) = %v, want error %q", c.s, m, c.want)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("New(%+v):\n got  %q\n want %q", c.s, err, c.want)
		}
	}
}

func TestNewAccepts(t *testing.T) {
	for _, s := range []Scenario{
		pickupQueue(),
		{Name: "one", Statuses: []string{"ONLY"}},
		{Name: "dups", Statuses: []string{"A", "B"}, End: []string{"B", "B"}, Repeatable: []string{"A", "A"}},
		{Name: "repeatable_end", Statuses: []string{"A", "B"}, End: []string{"B"}, Repeatable: []string{"B"}},
		{Name: "must_and_only", Statuses: []string{"A", "B", "C"}, OnlyFrom: map[string][]string{"C": {"B"}}, NextMustBe: map[string]string{"B": "C"}},
	} {
		if _, err := New(s); err != nil {
			t.Errorf("New(%s): %v", s.Name, err)
		}
	}
}

// TestMachineOwnsItsData: neither the Scenario passed to New nor the slice
// from Statuses can change a compiled Machine.
func TestMachineOwnsItsData(t *testing.T) {
	s := pickupQueue()
	m, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Statuses[0] = "CHANGED"
	s.OnlyFrom["CANCELLED"][0] = "TO_PICK_UP"
	s.NextMustBe["TO_PICK_UP"] = "CANCELLED"
	m.Statuses()[1] = "CHANGED"
	if want := pickupQueue().Statuses; !slices.Equal(m.Statuses(), want) {
		t.Errorf("Statuses() = %v, want %v", m.Statuses(), want)
	}
	checkDecision(t, m, decideCase{st("CALL_NUM", 0), "CANCELLED", 0, Forward, ""})
	checkDecision(t, m, decideCase{st("TO_PICK_UP", 0), "CANCELLED", 0, Reject, "after TO_PICK_UP only FINISHED"})
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Forward: "forward", AlreadyCurrent: "already_current", Reject: "reject", 0: "Verdict(0)"} {
		if got := v.String(); got != want {
			t.Errorf("Verdict(%d).String() = %q, want %q", int(v), got, want)
		}
	}
}
