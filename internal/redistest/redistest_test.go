package redistest

import (
	"strings"
	"testing"
)

func TestStartAnswersAndFlushes(t *testing.T) {
	addr := Start(t)
	if err := Do(addr, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	Flush(t, addr)
	n, err := do(addr, "DBSIZE")
	if err != nil {
		t.Fatal(err)
	}
	if n != "0" {
		t.Fatalf("DBSIZE after Flush = %s, want 0", n)
	}
}

func TestStartServerStop(t *testing.T) {
	addr, stop, err := StartServer()
	if err == ErrNotInstalled {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if reply, err := do(addr, "PING"); err != nil || reply != "PONG" {
		t.Fatalf("PING = %q, %v", reply, err)
	}
	stop()
	stop() // must be safe twice
	if _, err := do(addr, "PING"); err == nil {
		t.Fatal("server still answers after stop")
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two servers share %s", a)
	}
	if err := Do(a, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := do(b, "EXISTS", "k"); err != nil || v != "0" {
		t.Fatalf("EXISTS on the other server = %q, %v", v, err)
	}
}

func TestDoReportsServerErrors(t *testing.T) {
	addr := Start(t)
	err := Do(addr, "NOSUCHCOMMAND")
	if err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("err = %v, want unknown command", err)
	}
}
