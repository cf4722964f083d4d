package redistest

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestStartAnswers(t *testing.T) {
	addr := Start(t)
	if err := Do(addr, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	n, err := do(addr, "DBSIZE")
	if err != nil {
		t.Fatal(err)
	}
	if n != "1" {
		t.Fatalf("DBSIZE after a SET = %s, want 1", n)
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

// TestFreezeThaw: a frozen server accepts a connection but answers nothing
// until thawed, and a frozen server is still stopped by the cleanup.
func TestFreezeThaw(t *testing.T) {
	srv := Launch(t)
	srv.Freeze(t)
	conn, err := net.DialTimeout("tcp", srv.Addr, time.Second)
	if err != nil {
		t.Fatalf("dialing a frozen server: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 16)
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("a frozen server answered %q", buf[:n])
	}
	srv.Thaw(t)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "+PONG") {
		t.Fatalf("after Thaw the queued PING got %q, %v", buf[:n], err)
	}
	srv.Freeze(t) // left frozen: the cleanup must still stop it
}
